"""Open pages follow the store: a session ended anywhere closes its websockets here within a second.

Logout on another node, ``crmtel manager passwd``, deactivation and an extension taken away all delete the
manager's session rows (``crmtel.store.managers``); this watch notices the rows gone, forgets the tokens and
ends the connections. It also keeps each connection's deliveries on the manager's current extensions: an
extension lost ends the manager's sessions, one gained asks the page to reconnect for a fresh subscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from crmtel.errors import StoreUnavailable
from crmtel.push.context import watch_scope
from crmtel.push.hub import Hub
from crmtel.push.sessions import DurableSessions
from crmtel.store.managers import ManagerRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Checked:
    """What one pass did: connections ended (session gone) and asked to reconnect (scope grew)."""

    ended: int = 0
    refreshed: int = 0


class SessionWatch:
    """Compares the open connections with the store every ``interval`` seconds."""

    def __init__(
        self, hub: Hub, sessions: DurableSessions, managers: ManagerRepository, *, interval: float = 0.5
    ) -> None:
        self._hub = hub
        self._sessions = sessions
        self._managers = managers
        self._interval = interval

    async def check(self) -> Checked:
        """One pass: end the connections whose session is gone, retarget those whose extensions changed."""
        conns = self._hub.all_connections()
        gone = await self._sessions.ended(c.token for c in conns if c.token)
        ended = refreshed = 0
        for conn in conns:
            if conn.token in gone:
                self._hub.end(conn)
                ended += 1
        live = [c for c in conns if not c.finished]
        if not live:
            return Checked(ended, refreshed)
        managers = {m.id: m for m in await self._managers.many(list({c.manager_id for c in live}))}
        for conn in live:
            manager = managers.get(conn.manager_id)
            if manager is None or not manager.active:
                await self._end_manager(conn.manager_id)
                self._hub.end(conn)
                ended += 1
                continue
            now = watch_scope(manager)
            was = None if conn.everyone else conn.extensions
            if now == was:
                continue
            if was is None or (now is not None and not was <= now):
                # Lost an extension (or the head's view): this manager's sessions end everywhere.
                await self._end_manager(manager.id)
                self._hub.end(conn)
                ended += 1
            else:
                conn.refresh()
                refreshed += 1
        return Checked(ended, refreshed)

    async def _end_manager(self, manager_id: int) -> None:
        log.info("push.sessions_ended", manager_id=manager_id)
        await self._sessions.drop_manager(manager_id)

    async def run(self) -> None:
        """Check every ``interval`` seconds until cancelled; a store outage only skips a pass."""
        down = False
        while True:
            try:
                checked = await self.check()
            except StoreUnavailable as err:
                # Said once per outage, not twice a second: open pages stay as they are meanwhile.
                if not down:
                    log.warning("push.session_watch_unavailable", error=str(err))
                down = True
            else:
                if down:
                    log.info("push.session_watch_back")
                down = False
                if checked.ended or checked.refreshed:
                    log.info("push.session_watch", ended=checked.ended, refreshed=checked.refreshed)
            await asyncio.sleep(self._interval)

    async def cleanup_ctx(self, _app: object) -> AsyncIterator[None]:
        """The web app owns the watch: started with it, cancelled and awaited when it stops."""
        task = asyncio.create_task(self.run(), name="push.session_watch")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait([task])
