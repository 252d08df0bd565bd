"""The Alembic migrations build exactly the schema the ORM models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from crmtel.store.db import Database
from crmtel.store.models import Base


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_models(db: Database) -> None:
    """`crmtel db upgrade` leaves no difference between the database and models.py (tables, columns, indexes)."""
    async with db.engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == []
