"""Databases the benchmarks load: a named PostgreSQL database next to the test one, or a SQLite file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


async def pg_database(base_url: str, name: str, *, fresh: bool) -> str:
    """The URL of database ``name`` on the server of ``base_url``; created if missing, re-created if ``fresh``."""
    engine = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            exists = found.scalar() is not None
            if exists and fresh:
                await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            if not exists or fresh:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite database file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@asynccontextmanager
async def temp_sqlite(prefix: str, smoke: bool) -> AsyncIterator[str]:
    """A SQLite URL in a new temporary folder (a smoke run's named by its process), removed with its WAL after."""
    with tempfile.TemporaryDirectory(
        prefix=f"{prefix}-smoke-{os.getpid()}-" if smoke else f"{prefix}-"
    ) as tmp:
        path = Path(tmp) / "bench.db"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            remove_sqlite(path)
