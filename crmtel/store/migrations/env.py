"""Alembic environment: runs migrations over the async engine of the configured URL.

Files in versions/ are named by their position in the chain; the first seven keep older revision ids (README.md).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from crmtel.store.db import create_engine
from crmtel.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # A batch migration on SQLite copies a table into a new one and drops the old; with foreign keys on,
        # dropping `calls` deletes every call note and queue visit (ON DELETE CASCADE) and unlinks deals and
        # tasks (SET NULL). The pragma only takes effect outside a transaction, so it comes first.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Cluster nodes may start together: one migrates, the others wait here and then find nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(827701, 0)"))
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                # Raised inside the transaction: the upgrade is rolled back, the database stays as it was.
                raise RuntimeError(f"the migration left rows pointing at missing rows: {broken[:10]}")


async def _online() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
