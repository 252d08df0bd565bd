"""Deals: created from a call card, listed open on the card."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import DealStatus
from crmtel.store.db import Database
from crmtel.store.models import DealRow


@dataclass(frozen=True, slots=True)
class DealSummary:
    """A deal as a call card or a call's page lists it."""

    id: int
    title: str
    amount: Decimal
    stage: str
    status: DealStatus
    client_id: int | None
    lead_id: int | None
    manager_id: int | None
    call_id: int | None
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class NewDeal:
    """A deal to open, for a client or a lead, optionally from a call (``call_id`` is the calls row id)."""

    title: str
    amount: Decimal
    manager_id: int | None
    client_id: int | None = None
    lead_id: int | None = None
    call_id: int | None = None
    stage: str = "new"
    # When it was opened; None means now (imports and the demo's history give earlier dates).
    opened_at: datetime | None = None


def _summary(row: DealRow) -> DealSummary:
    return DealSummary(
        id=row.id,
        title=row.title,
        amount=Decimal(row.amount),
        stage=row.stage,
        status=DealStatus(row.status),
        client_id=row.client_id,
        lead_id=row.lead_id,
        manager_id=row.manager_id,
        call_id=row.call_id,
        opened_at=row.opened_at,
    )


async def open_deals_in(
    session: AsyncSession, *, client_id: int | None, lead_id: int | None, limit: int = 10
) -> list[DealSummary]:
    """The newest open deals of a client or a lead (nothing when both ids are None)."""
    if client_id is None and lead_id is None:
        return []
    where = DealRow.client_id == client_id if client_id is not None else DealRow.lead_id == lead_id
    rows = (
        (
            await session.execute(
                select(DealRow)
                .where(where, DealRow.status == DealStatus.OPEN.value)
                .order_by(DealRow.opened_at.desc(), DealRow.id.desc())
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    return [_summary(r) for r in rows]


class DealRepository:
    """Deals over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, deal: NewDeal) -> DealSummary:
        """Open a deal."""
        async with self._db.session() as session:
            row = DealRow(
                title=deal.title,
                amount=deal.amount,
                manager_id=deal.manager_id,
                client_id=deal.client_id,
                lead_id=deal.lead_id,
                call_id=deal.call_id,
                stage=deal.stage,
                status=DealStatus.OPEN.value,
                opened_at=deal.opened_at or datetime.now(UTC),
            )
            session.add(row)
            await session.flush()
            return _summary(row)

    async def close(self, deal_id: int, status: DealStatus, at: datetime | None = None) -> None:
        """Mark a deal won or lost (closed ``at``, default now); reports count won deals by when they closed."""
        if status is DealStatus.OPEN:
            raise ValueError("a deal is closed as won or lost")
        async with self._db.session() as session:
            await session.execute(
                update(DealRow)
                .where(DealRow.id == deal_id)
                .values(status=status.value, stage=status.value, closed_at=at or datetime.now(UTC))
            )

    async def plan(
        self, deal_id: int, step: str | None, at: datetime | None, *, lost_reason: str | None = None
    ) -> None:
        """Set a deal's next step and its date (and, for a lost deal, why it was lost)."""
        values: dict[str, object] = {"next_step": step, "next_step_at": at}
        if lost_reason is not None:
            values["lost_reason"] = lost_reason
        async with self._db.session() as session:
            await session.execute(update(DealRow).where(DealRow.id == deal_id).values(**values))

    async def for_calls(self, call_ids: Sequence[int]) -> list[DealSummary]:
        """Deals opened from these calls, oldest first."""
        if not call_ids:
            return []
        async with self._db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(DealRow).where(DealRow.call_id.in_(call_ids)).order_by(DealRow.id)
                    )
                )
                .scalars()
                .all()
            )
            return [_summary(r) for r in rows]

    async def open_for(self, *, client_id: int | None, lead_id: int | None) -> list[DealSummary]:
        """The open deals of a client or a lead."""
        async with self._db.session() as session:
            return await open_deals_in(session, client_id=client_id, lead_id=lead_id)
