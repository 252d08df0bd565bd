"""Engine and sessions; the only place that knows which database crmtel talks to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import column, event, table, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from crmtel.errors import StoreUnavailable
from crmtel.store import changes
from crmtel.store.changes import StoreChange

_log = structlog.get_logger(__name__)
# card_epoch is among the tables no card is built from: moving it is not itself a change (crmtel.store.changes).
_EPOCH = table("card_epoch", column("id"), column("n"))
_NEXT_EPOCH = update(_EPOCH).where(_EPOCH.c.id == 1).values(n=_EPOCH.c.n + 1).returning(_EPOCH.c.n)
_MIGRATIONS = Path(__file__).parent / "migrations"
# How long a SQLite connection waits for another writer's lock before "database is locked".
_SQLITE_BUSY_MS = 5000


def is_sqlite(url: str) -> bool:
    """Whether the URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web app read while the AMI service writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
    cursor.close()


def create_engine(
    url: str,
    *,
    echo: bool = False,
    server_settings: Mapping[str, str] | None = None,
    pool_size: int = 10,
    max_overflow: int = 20,
) -> AsyncEngine:
    """An async engine with the settings each backend needs (``server_settings``: PostgreSQL session settings)."""
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"server_settings": dict(server_settings)} if server_settings else {}
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


class Database:
    """Owns the engine and hands out sessions; disposed on shutdown."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        server_settings: Mapping[str, str] | None = None,
        pool_size: int = 10,
        max_overflow: int = 20,
    ) -> None:
        self.url = url
        self.engine = create_engine(
            url,
            echo=echo,
            server_settings=server_settings,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._on_dispose: list[Callable[[], Awaitable[None]]] = []
        # Told, after each commit, what it changed of what ringing cards show (crmtel.store.changes).
        self._on_change: list[Callable[[StoreChange], None]] = []
        # ``number_changes``: each transaction that changes cards moves the card epoch with its commit.
        self._numbered = False
        changes.watch(self.engine.sync_engine)

    def number_changes(self) -> None:
        """Have every transaction that changes cards move the card epoch in the same commit, the change
        carrying the epoch it moved to (a cluster node: the others can tell a change never announced)."""
        self._numbered = True

    def on_dispose(self, close: Callable[[], Awaitable[None]]) -> None:
        """Have ``dispose`` await ``close`` first (for helpers that hold a connection of their own)."""
        self._on_dispose.append(close)

    def on_change(self, listener: Callable[[StoreChange], None]) -> None:
        """Have ``listener`` told what each committed transaction changed of what cards show (not empty)."""
        self._on_change.append(listener)

    def committed(self, change: StoreChange) -> None:
        """Tell the listeners about ``change`` (done by ``session``)."""
        if change:
            for listener in self._on_change:
                listener(change)

    async def told(self, change: StoreChange) -> None:
        """After a commit: tell this process's listeners about ``change`` or, with none (a CLI command beside a
        running daemon), move the store's card epoch so every daemon on it forgets its cards."""
        if not change:
            return
        if self._on_change:
            self.committed(change)
            return
        try:
            async with self.engine.begin() as conn:
                moved = await conn.execute(text("UPDATE card_epoch SET n = n + 1 WHERE id = 1"))
                if moved.rowcount == 0:  # its row lost (a table emptied by hand): start it again
                    await conn.execute(text("INSERT INTO card_epoch (id, n) VALUES (1, 1)"))
        except (SQLAlchemyError, OSError) as err:
            # The write itself is committed; a daemon then shows it within card_cache_seconds.
            _log.warning("store.card_epoch_not_moved", error=str(err))

    async def card_epoch(self) -> int:
        """The card epoch other processes move (see ``told``)."""
        async with self.session() as session:
            found = await session.execute(text("SELECT n FROM card_epoch WHERE id = 1"))
            return int(found.scalar_one_or_none() or 0)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success; database errors become StoreUnavailable."""
        try:
            epoch: int | None = None
            async with self.sessions() as session:
                async with session.begin():
                    yield session
                    # The statements of the commit's own flush are noted into the same pending change.
                    pending = changes.pending(await session.connection())
                    if self._numbered:
                        await session.flush()
                        if pending.change():
                            # Last, so the epoch row is locked only for the commit itself.
                            epoch = (await session.execute(_NEXT_EPOCH)).scalar_one_or_none()
                change = pending.change()
                await self.told(replace(change, epoch=epoch) if epoch is not None and change else change)
        except SQLAlchemyError as err:
            raise StoreUnavailable(f"database error: {err.__class__.__name__}: {err}") from err
        except OSError as err:
            raise StoreUnavailable(f"database unreachable: {err}") from err

    async def wait_at_most(self, session: AsyncSession, seconds: float) -> None:
        """Bound how long ``session``'s transaction waits for another writer's lock to ``seconds``.

        SQLite: the connection's busy wait (``PRAGMA busy_timeout``, 5 s by default) is shortened when
        ``seconds`` is less (it stays so on that pooled connection: meant for the writes of a stop); a busy
        wait cannot be interrupted once it began, so this is what keeps a stop on time. PostgreSQL: ``SET LOCAL lock_timeout`` for this transaction. A wait that runs out is a
        database error (StoreUnavailable), and the caller's transaction is rolled back.
        """
        ms = max(1, int(seconds * 1000))
        if is_sqlite(self.url):
            if ms < _SQLITE_BUSY_MS:
                await session.execute(text(f"PRAGMA busy_timeout={ms}"))
        else:
            await session.execute(text(f"SET LOCAL lock_timeout = {ms}"))

    async def ping(self) -> None:
        """One trivial query: StoreUnavailable unless the database answers."""
        async with self.session() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection (and first whatever registered with ``on_dispose``)."""
        while self._on_dispose:
            await self._on_dispose.pop()()
        await self.engine.dispose()


def alembic_config(url: str) -> AlembicConfig:
    """Alembic configuration pointing at the packaged migrations and the given database."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (blocking; runs its own event loop inside env.py)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` without blocking the running loop."""
    await asyncio.to_thread(upgrade_sync, url, revision)
