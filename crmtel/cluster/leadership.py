"""Exactly one node follows each PBX: the one holding the PBX's PostgreSQL session advisory lock.

The lock lives on a connection of its own. PostgreSQL drops it the moment that session ends — the node died
(``kill -9`` closes the socket), lost its network (TCP keepalives), or froze (``idle_session_timeout``: the
leader's health check keeps the session busy; a paused process stops doing so). A standby polls for the lock;
on winning it, it bumps the PBX's epoch (fencing: the old leader's writes are refused from then on), resumes
the stored live calls and follows the PBX until it loses the lock, its database, or a write finds it fenced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from crmtel.store.leases import LeaseRepository

log = structlog.get_logger(__name__)

# The advisory lock key space of crmtel (first key); the second is hashtext of the PBX name.
LOCK_CLASS = 827_701

Follow = Callable[[str, int, asyncio.Event], Coroutine[Any, Any, None]]


class LeaseLost(Exception):
    """This node no longer holds a PBX's lock (its session is gone or unhealthy)."""


class Leadership:
    """Stands by for one PBX, follows it while leading, and stands by again when the lead is lost."""

    def __init__(
        self,
        pbx: str,
        dsn: str,
        node: str,
        leases: LeaseRepository,
        follow: Follow,
        *,
        poll: float = 1.0,
        check: float = 1.0,
        session_timeout: float = 3.0,
    ) -> None:
        self.pbx = pbx
        self.node = node
        self._dsn = dsn
        self._leases = leases
        self._follow = follow
        self._poll = poll
        self._check = check
        self._session_timeout = session_timeout
        self.leading = False
        self.epoch: int | None = None
        self.changes = 0
        # Set by ``stop`` (crmtel is stopping): the current term ends and no new one starts.
        self._stop = asyncio.Event()
        # Set while not leading (cleared for a term, set again once its last writes are done).
        self.off = asyncio.Event()
        self.off.set()

    def stop(self) -> None:
        """Take no new term: ``run`` returns once the current term (if any) has ended."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stop.is_set()

    async def run(self) -> None:
        """Stand by, lead, stand by … until cancelled or stopped."""
        while not self._stop.is_set():
            try:
                await self._term()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, LeaseLost) as err:
                if self._stop.is_set():
                    return
                log.warning(
                    "cluster.standby", pbx=self.pbx, node=self.node, reason=f"{type(err).__name__}: {err}"
                )
            await asyncio.sleep(self._poll)

    async def _connect(self) -> asyncpg.Connection:
        ms = str(int(self._session_timeout * 1000))
        settings = {
            # A frozen leader stops its health checks; PostgreSQL then ends the session and frees the lock.
            "idle_session_timeout": ms,
            "idle_in_transaction_session_timeout": ms,
            "tcp_keepalives_idle": "2",
            "tcp_keepalives_interval": "1",
            "tcp_keepalives_count": "3",
            "application_name": f"crmtel lease {self.pbx} ({self.node})"[:63],
        }
        return await asyncpg.connect(self._dsn, timeout=self._session_timeout, server_settings=settings)

    async def _term(self) -> None:
        conn = await self._connect()
        try:
            await self._acquire(conn)
            self.epoch = await self._leases.take_over(self.pbx, self.node)
            self.leading = True
            self.off.clear()
            self.changes += 1
            log.info("cluster.leading", pbx=self.pbx, node=self.node, epoch=self.epoch)
            fenced = asyncio.Event()
            follow = asyncio.create_task(
                self._follow(self.pbx, self.epoch, fenced), name=f"follow-{self.pbx}"
            )
            watch = asyncio.create_task(self._watch(conn, fenced), name=f"lease-{self.pbx}")
            try:
                done, _ = await asyncio.wait({follow, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Following stops first (its last flush still carries this term's epoch), then the watch.
                follow.cancel()
                await asyncio.gather(follow, return_exceptions=True)
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            raise LeaseLost("stopped following")
        finally:
            self.leading = False
            self.off.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=1.0)
            conn.terminate()

    async def _acquire(self, conn: asyncpg.Connection) -> None:
        # Polling, not pg_advisory_lock: a blocked wait would hide a dead database from this loop.
        while True:
            if self.stopping:
                raise LeaseLost("stopping")
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, self.pbx):
                return
            await asyncio.sleep(self._poll)

    async def _watch(self, conn: asyncpg.Connection, fenced: asyncio.Event) -> None:
        """Check the lock's session every ``check`` seconds; a failed check or a fenced write ends the term."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fenced.wait(), timeout=self._check)
            if fenced.is_set():
                raise LeaseLost("a write found the PBX taken over by another node")
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self._session_timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                raise LeaseLost(f"lock session unhealthy: {type(err).__name__}: {err}") from err
