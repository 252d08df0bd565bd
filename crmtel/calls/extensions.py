"""The managers' extensions, held in memory for the leg classifier and kept in step with the store.

With the browser phone on, a device ``99<ext>`` is ``<ext>``'s browser phone unless ``99<ext>`` is itself a
manager's extension (``crmtel.calls.legs.user_extension``). A running daemon learns a manager added or changed
by `crmtel manager`, the import or another node the way its other in-memory copies of the store do: each commit
that may touch managers is told to ``Database.on_change`` listeners (this process's own commits; another
process's through the store's card epoch, ``follow_card_epoch``; a cluster node's through the same epoch
ledger), and ``changed`` then reads the extensions again beside tracking — no AMI event waits for that read.
"""

from __future__ import annotations

import asyncio
import logging

from crmtel.errors import StoreUnavailable
from crmtel.store.changes import StoreChange
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository

log = logging.getLogger(__name__)

# Between reads of a store that does not answer (the change is not forgotten: read again until it answers).
_RETRY_MIN = 0.5
_RETRY_MAX = 10.0
# A change is read this long after it was told, with every change told meanwhile: a burst of CRM writes (an
# import, a busy page) is a few reads, not one read of every manager per write.
SETTLE_SECONDS = 0.2


class KnownExtensions:
    """Every manager's extensions (``current``), read at start and again after each change of the CRM."""

    def __init__(self, db: Database) -> None:
        self._repo = ManagerRepository(db)
        self.current: frozenset[str] = frozenset()
        # Moves on with every change: a read that began before one is read again.
        self._generation = 0
        self._reload: asyncio.Task[None] | None = None
        # Reads begun, and the latest of them whose answer ``current`` holds.
        self._began = 0
        self._applied = 0
        self.reloads = 0
        # Closed with its service: a commit of the stop's last writes starts no task nobody would await.
        self._closed = False

    async def load(self) -> frozenset[str]:
        """Read the extensions now (StoreUnavailable when the store does not answer)."""
        # Reads may overlap (a restore's beside a change's re-read): the one begun last saw the newest store, so
        # an older one answering after it must not put back what it saw.
        self._began += 1
        read = self._began
        managers = await self._repo.all()
        self.reloads += 1
        if read > self._applied:
            self._applied = read
            self.current = frozenset(ext for manager in managers for ext in manager.extensions)
        return self.current

    def changed(self, change: StoreChange) -> None:
        """A ``Database.on_change`` listener: a CRM write (a manager among them) has the extensions read again."""
        if not change.everything or self._closed:
            return  # a call row's numbers: no manager changed (or the service has stopped)
        self._generation += 1
        if self._reload is None:
            self._reload = asyncio.get_running_loop().create_task(
                self._follow(), name="calls.known_extensions"
            )

    async def _follow(self) -> None:
        try:
            await self._read_until_settled()
        finally:
            # In the task's own last step, not a done callback: a change told between that step and the callbacks
            # (a commit resumed in the same turn of the loop) would find the task still set, start no read, and
            # its extensions would wait for the next CRM write.
            if self._reload is asyncio.current_task():
                self._reload = None

    async def _read_until_settled(self) -> None:
        delay = _RETRY_MIN
        while True:
            await asyncio.sleep(SETTLE_SECONDS)
            generation = self._generation
            try:
                before = self.current
                known = await self.load()
            except StoreUnavailable as err:
                log.warning("managers' extensions not re-read (retrying in %.1f s): %s", delay, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            if known != before:
                log.info(
                    "managers' extensions: %d known (added: %s; gone: %s)",
                    len(known),
                    ", ".join(sorted(known - before)) or "-",
                    ", ".join(sorted(before - known)) or "-",
                )
            if generation == self._generation:
                return

    async def settled(self) -> None:
        """Wait until no re-read is running (tests, and a stop that wants the last one done)."""
        while self._reload is not None:
            await asyncio.wait([self._reload])

    async def aclose(self) -> None:
        """Cancel a re-read still running and wait for it; later changes start none."""
        self._closed = True
        task, self._reload = self._reload, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
