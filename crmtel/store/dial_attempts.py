"""The click-to-call audit log: every attempt, placed or refused, and how a placed one went."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import false, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.dial.models import DialAttempt
from crmtel.dial.policy import LogWindows, RateRefusal, log_refusal
from crmtel.store.db import Database, is_sqlite
from crmtel.store.models import DialAttemptRow

# pg_advisory_xact_lock's first key: crmtel's click-to-call windows (the second is the PBX's name hashed).
_LOCK_CLASS = 0x0C7E1

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

    async def admit(self, attempt: DialAttempt, windows: LogWindows) -> RateRefusal | None:
        """Record ``attempt`` as placed when the manager's and the PBX's windows in the log have room, else as
        refused (and say why). Counting and writing are one step for every process sharing the database — a
        lock per PBX held to the commit — so two nodes' clicks at the same instant cannot both take the last
        place in a window."""
        async with self._db.session() as session:
            await self._lock(session, attempt.pbx)
            since = attempt.at - timedelta(seconds=windows.seconds)
            manager_full = None
            if windows.manager is not None:
                manager_full = await self._nth_newest(
                    session, attempt.pbx, since, windows.per_manager, windows.manager
                )
            pbx_full = await self._nth_newest(session, attempt.pbx, since, windows.per_pbx, None)
            refusal = log_refusal(windows, manager_full, pbx_full, attempt.at)
            row = attempt
            if refusal is not None:
                row = replace(attempt, decision="refused", reason=refusal.key, originate_id=None)
            session.add(DialAttemptRow(**{name: getattr(row, name) for name in _FIELDS}))
        return refusal

    async def _lock(self, session: AsyncSession, pbx: str) -> None:
        if is_sqlite(self._db.url):
            # SQLite has one writer: a write that changes nothing takes the database's write lock at once.
            await session.execute(update(DialAttemptRow).where(false()).values(pbx=DialAttemptRow.pbx))
        else:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, hashtext(:pbx))"), {"cls": _LOCK_CLASS, "pbx": pbx}
            )

    @staticmethod
    async def _nth_newest(
        session: AsyncSession, pbx: str, since: datetime, nth: int, login: str | None
    ) -> datetime | None:
        query = select(DialAttemptRow.at).where(
            DialAttemptRow.pbx == pbx, DialAttemptRow.at >= since, DialAttemptRow.decision == "placed"
        )
        if login is not None:
            query = query.where(DialAttemptRow.manager_login == login)
        query = query.order_by(DialAttemptRow.at.desc()).offset(max(0, nth - 1)).limit(1)
        return (await session.execute(query)).scalar_one_or_none()

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
