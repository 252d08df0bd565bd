"""The numbers of many clients or leads at once, as lists and deal cards show them: a record's own numbers first,
then its contact persons' (a client reached only through them), each number once, at most ``LISTED``."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.crm.models import Kind, PhoneView
from crmtel.store.models import ClientContactRow, PhoneRow

# How many numbers a list row or a deal card shows (the card shows them all).
LISTED = 3
# Ids asked about in one statement (SQLite's bound-parameter limit is far above; PostgreSQL's plan stays small).
CHUNK = 500


async def numbers_in(
    session: AsyncSession, kind: Kind, ids: Collection[int], *, limit: int = LISTED
) -> dict[int, tuple[PhoneView, ...]]:
    """Each party's numbers (own first, then its contact persons', by age), without repeats, ``limit`` each."""
    # Keyed by the owner column, nullable in its type (never null here: it is matched against ``ids``).
    found: dict[int | None, list[PhoneView]] = {}
    ordered = sorted(set(ids))
    owner = PhoneRow.client_id if kind is Kind.CLIENT else PhoneRow.lead_id
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        for pid, row in await session.execute(
            select(owner, PhoneRow).where(owner.in_(chunk)).order_by(PhoneRow.id)
        ):
            found.setdefault(pid, []).append(PhoneView(row.id, row.e164, row.kind))
        if kind is Kind.CLIENT:
            for pid, row in await session.execute(
                select(ClientContactRow.client_id, PhoneRow)
                .join(PhoneRow, PhoneRow.contact_id == ClientContactRow.contact_id)
                .where(ClientContactRow.client_id.in_(chunk))
                .order_by(PhoneRow.id)
            ):
                found.setdefault(pid, []).append(PhoneView(row.id, row.e164, row.kind, row.contact_id))
    out: dict[int, tuple[PhoneView, ...]] = {}
    for pid, views in found.items():
        if pid is None:
            continue
        seen: set[str] = set()
        unique = []
        for view in views:
            if view.e164 not in seen:
                seen.add(view.e164)
                unique.append(view)
        out[pid] = tuple(unique[:limit])
    return out
