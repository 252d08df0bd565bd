"""The click-to-call audit log: every attempt, placed or refused, and how a placed one went."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from crmtel.dial.models import DialAttempt
from crmtel.store.db import Database
from crmtel.store.models import DialAttemptRow

_FIELDS = (
    "at",
    "pbx",
    "source",
    "extension",
    "number",
    "manager_id",
    "manager_login",
    "dialled",
    "originate_id",
    "decision",
    "reason",
    "status",
    "detail",
)


def _domain(row: DialAttemptRow) -> DialAttempt:
    return DialAttempt(**{name: getattr(row, name) for name in _FIELDS})


class DialAttempts:
    """Writes and reads ``dial_attempts``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, attempt: DialAttempt) -> None:
        """Record an attempt."""
        async with self._db.session() as session:
            session.add(DialAttemptRow(**{name: getattr(attempt, name) for name in _FIELDS}))

    async def finish(self, originate_id: str, status: str, detail: str | None) -> None:
        """How a placed attempt went."""
        async with self._db.session() as session:
            await session.execute(
                update(DialAttemptRow)
                .where(DialAttemptRow.originate_id == originate_id)
                .values(status=status, detail=(detail or None) and detail[:200])
            )

    async def placed_since(self, pbx: str, since: datetime) -> int:
        """How many attempts were placed on ``pbx`` from ``since`` on (every node and the CLI)."""
        async with self._db.session() as session:
            found = await session.execute(
                select(func.count())
                .select_from(DialAttemptRow)
                .where(
                    DialAttemptRow.pbx == pbx,
                    DialAttemptRow.at >= since,
                    DialAttemptRow.decision == "placed",
                )
            )
            return int(found.scalar_one())

    async def between(
        self, since: datetime, until: datetime | None = None, *, login: str | None = None, limit: int = 1000
    ) -> list[DialAttempt]:
        """Attempts from ``since`` (to ``until``), newest first; ``login``: one manager's only."""
        query = select(DialAttemptRow).where(DialAttemptRow.at >= since)
        if until is not None:
            query = query.where(DialAttemptRow.at < until)
        if login is not None:
            query = query.where(DialAttemptRow.manager_login == login)
        query = query.order_by(DialAttemptRow.at.desc(), DialAttemptRow.id.desc()).limit(limit)
        async with self._db.session() as session:
            return [_domain(row) for row in (await session.execute(query)).scalars()]
