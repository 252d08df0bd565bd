"""Instants as the outside world reads them: ISO 8601 in UTC with ``Z``, never a naive local-looking string.

SQLite hands timezone-aware columns back naive (they were written as UTC); a naive value here is therefore
UTC. Every API, websocket message and JSON report serialises instants through ``iso_instant``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import overload


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@overload
def assume_utc(value: datetime) -> datetime: ...
@overload
def assume_utc(value: None) -> None: ...
def assume_utc(value: datetime | None) -> datetime | None:
    """A naive time marked UTC (SQLite hands stored times back naive; crmtel writes only UTC); an aware one as it is."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def iso_instant(value: datetime | None) -> str | None:
    """``2026-12-01T08:03:08.458855Z``: the instant in UTC with its offset; None stays None."""
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")


def iso_value(value: datetime | date | None) -> str | None:
    """An instant as ``iso_instant``; a calendar day (no time, no zone) as ``2026-11-01``."""
    if isinstance(value, datetime) or value is None:
        return iso_instant(value)
    return value.isoformat()
