"""Every instant column of the store is UtcDateTime: a time with an offset is stored as the instant it is.

A plain ``DateTime(timezone=True)`` column would drop the offset on SQLite (10:00+03:00 stored as 10:00 UTC).
"""

from __future__ import annotations

from sqlalchemy import DateTime

from crmtel.store.models import Base, UtcDateTime


def test_no_column_is_a_bare_datetime() -> None:
    """Each date-time column of every table goes through UtcDateTime (a new column cannot forget it)."""
    bare = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, DateTime)
    ]
    instants = [
        column
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, UtcDateTime)
    ]
    assert bare == []
    assert len(instants) >= 30
