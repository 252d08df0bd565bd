"""systemd's notify protocol (``Type=notify``): READY, STATUS, WATCHDOG and STOPPING, through ``sdnotify``.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op. The watchdog ping is an asyncio task on the
daemon's own event loop, not a thread: when the loop stalls (a blocking call, a deadlock) the pings stop
and systemd restarts the service after ``WatchdogSec=``, which is the whole point of the watchdog.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

import sdnotify
import structlog

_log = structlog.get_logger("crmtel.systemd")

# How often STATUS= is refreshed when systemd asked for no watchdog (it is also re-checked on every ping).
STATUS_INTERVAL = 5.0


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises.

    None when systemd asked for no watchdog, or asked it of another process (``WATCHDOG_PID``).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


class ServiceManager:
    """Tells systemd how crmtel is doing; silent when crmtel was not started by systemd."""

    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET") or None
        self.watchdog = watchdog_interval(os.environ, os.getpid()) if self.address else None
        self._notifier: sdnotify.SystemdNotifier | None = None
        self._warned = False
        self._status = ""
        if self.address is None:
            return
        try:
            # debug=True makes sdnotify raise, so a wrong socket is logged once here instead of every
            # message vanishing silently.
            self._notifier = sdnotify.SystemdNotifier(debug=True)
        except OSError as err:
            _log.warning("systemd.notify_socket_unusable", socket=self.address, error=str(err))
            return
        if self._notifier.socket is not None:
            # Never block the event loop on a full socket buffer: a lost ping is better than a stalled loop.
            self._notifier.socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere."""
        return self._notifier is not None

    def notify(self, *lines: str) -> None:
        """Send one message of ``KEY=value`` lines."""
        if self._notifier is None:
            return
        try:
            self._notifier.notify("\n".join(lines))
        except OSError as err:
            if not self._warned:
                self._warned = True
                _log.warning("systemd.notify_failed", socket=self.address, error=str(err))

    def close(self) -> None:
        """Close the socket (after the last message)."""
        if self._notifier is not None and self._notifier.socket is not None:
            self._notifier.socket.close()
        self._notifier = None

    def ready(self, status: str) -> None:
        """Start-up finished: systemd marks the unit active (and starts the units ordered after it)."""
        self._status = status
        self.notify("READY=1", f"STATUS={status}")

    def stopping(self) -> None:
        """A stop has begun."""
        self.notify("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> None:
        """Update the line ``systemctl status`` shows (sent only when it changed)."""
        if text != self._status:
            self._status = text
            self.notify(f"STATUS={text}")

    async def run(self, status: Callable[[], str]) -> None:
        """Ping the watchdog and refresh STATUS= from this event loop until cancelled."""
        if self._notifier is None:
            return
        period = min(self.watchdog, STATUS_INTERVAL) if self.watchdog is not None else STATUS_INTERVAL
        while True:
            if self.watchdog is not None:
                self.notify("WATCHDOG=1")
            self.status(status())
            await asyncio.sleep(period)
