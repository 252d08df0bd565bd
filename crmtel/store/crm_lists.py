"""The client and lead lists: search, filters, sort and keyset paging that stay fast at a million parties.

A search token is a prefix of a stored term (``party_terms``, see ``crmtel.crm.search``). Each token is first
probed: how many terms start with it, counting at most ``NARROW``. When one token is narrow, its parties are
read from the term index and only they are filtered and sorted (term first). When every token is broad
(``ип``, ``ооо``), the list is walked in its sort order and each row checked with an index probe until the
page is full (order first): a common word matches many rows, so the page fills after a few hundred.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.crm.models import Cursor, Kind, PartyListItem, PartyPage, PartyQuery, Sort, Viewer
from crmtel.crm.search import Token, prefix_range
from crmtel.store.db import Database
from crmtel.store.models import (
    CallRow,
    ClientContactRow,
    ClientRow,
    DealRow,
    LeadRow,
    ManagerRow,
    PartyShareRow,
    PartyTermRow,
    PhoneRow,
)

# A token matching fewer terms than this is read from the term index first.
NARROW = 5000


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def table_of(kind: Kind) -> Any:
    """The ORM class of a kind."""
    return ClientRow if kind is Kind.CLIENT else LeadRow


def visible(kind: Kind, viewer: Viewer, table: Any | None = None) -> ColumnElement[bool] | None:
    """The rows a viewer may see: everything for a head; own, shared and unassigned for a manager."""
    if viewer.head:
        return None
    t = table if table is not None else table_of(kind)
    shared = select(PartyShareRow.party_id).where(
        PartyShareRow.kind == kind.value, PartyShareRow.manager_id == viewer.manager_id
    )
    return or_(t.manager_id == viewer.manager_id, t.manager_id.is_(None), t.id.in_(shared))


def _token_match(kind: Kind, token: Token, party_id: Any) -> ColumnElement[bool]:
    ranges = []
    for prefix in token.prefixes:
        low, high = prefix_range(prefix)
        ranges.append(and_(PartyTermRow.term >= low, PartyTermRow.term < high))
    return exists().where(PartyTermRow.kind == kind.code, PartyTermRow.party_id == party_id, or_(*ranges))


async def _probe(session: AsyncSession, kind: Kind, token: Token) -> int:
    total = 0
    for prefix in token.prefixes:
        low, high = prefix_range(prefix)
        inner = (
            select(PartyTermRow.party_id)
            .where(PartyTermRow.kind == kind.code, PartyTermRow.term >= low, PartyTermRow.term < high)
            .limit(NARROW)
            .subquery()
        )
        total += (await session.execute(select(func.count()).select_from(inner))).scalar_one()
    return total


async def _ids(session: AsyncSession, kind: Kind, token: Token) -> set[int]:
    found: set[int] = set()
    for prefix in token.prefixes:
        low, high = prefix_range(prefix)
        rows = await session.execute(
            select(PartyTermRow.party_id).where(
                PartyTermRow.kind == kind.code, PartyTermRow.term >= low, PartyTermRow.term < high
            )
        )
        found.update(r[0] for r in rows.all())
    return found


def _sort_columns(kind: Kind, sort: Sort) -> tuple[Any, Any, bool]:
    t = table_of(kind)
    if sort is Sort.CREATED_DESC:
        return t.created_at, t.id, True
    return t.name_key, t.id, sort is Sort.NAME_DESC


def cursor_key(item_key: object) -> str:
    """A sort key as the cursor carries it (datetimes in ISO form)."""
    return item_key.isoformat() if isinstance(item_key, datetime) else str(item_key)


def _after(kind: Kind, sort: Sort, after: Cursor) -> ColumnElement[bool]:
    key, ident, desc = _sort_columns(kind, sort)
    value: object = after.key
    if sort is Sort.CREATED_DESC:
        value = datetime.fromisoformat(after.key)
    if desc:
        return tuple_(key, ident) < tuple_(value, after.id)
    return tuple_(key, ident) > tuple_(value, after.id)


def _filters(q: PartyQuery, viewer: Viewer, now: datetime) -> list[ColumnElement[bool]]:
    t = table_of(q.kind)
    conds: list[ColumnElement[bool]] = []
    scope = visible(q.kind, viewer)
    if scope is not None:
        conds.append(scope)
    if q.manager_id is not None:
        conds.append(t.manager_id == q.manager_id)
    elif q.unassigned:
        conds.append(t.manager_id.is_(None))
    if q.kind is Kind.LEAD and q.lead_status:
        conds.append(LeadRow.status == q.lead_status)
    if q.open_deals is not None:
        owner = DealRow.client_id if q.kind is Kind.CLIENT else DealRow.lead_id
        has = exists().where(owner == t.id, DealRow.status == "open")
        conds.append(has if q.open_deals else ~has)
    if q.silent_days is not None:
        since = now - timedelta(days=q.silent_days)
        recent = exists().where(
            CallRow.party_kind == q.kind.value, CallRow.party_id == t.id, CallRow.started_at >= since
        )
        conds.append(~recent)
    if q.after is not None:
        conds.append(_after(q.kind, q.sort, q.after))
    return conds


class PartyLists:
    """Client and lead lists over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, q: PartyQuery, viewer: Viewer, *, now: datetime | None = None) -> PartyPage:
        """One page of the list, in ``q.sort`` order, after ``q.after``."""
        now = now or datetime.now(UTC)
        t = table_of(q.kind)
        conds = _filters(q, viewer, now)
        strategy = "list"
        async with self._db.session() as session:
            if q.tokens:
                probes = [(await _probe(session, q.kind, tok), tok) for tok in q.tokens]
                narrow = [tok for n, tok in probes if n < NARROW]
                broad = [tok for n, tok in probes if n >= NARROW]
                if narrow:
                    strategy = "terms"
                    ids: set[int] | None = None
                    for tok in narrow:
                        found = await _ids(session, q.kind, tok)
                        ids = found if ids is None else ids & found
                    if not ids:
                        return PartyPage((), None, strategy)
                    conds.append(t.id.in_(sorted(ids)))
                else:
                    strategy = "walk"
                conds.extend(_token_match(q.kind, tok, t.id) for tok in broad)
            key, ident, desc = _sort_columns(q.kind, q.sort)
            order = (key.desc(), ident.desc()) if desc else (key, ident)
            stmt = select(t).where(*conds).order_by(*order).limit(q.limit + 1)
            rows = list((await session.execute(stmt)).scalars().all())
            more = len(rows) > q.limit
            rows = rows[: q.limit]
            items = await _items(session, q.kind, rows)
        nxt = None
        if more and rows:
            last = rows[-1]
            raw = last.created_at if q.sort is Sort.CREATED_DESC else last.name_key
            nxt = Cursor(cursor_key(_utc(raw) if isinstance(raw, datetime) else raw), last.id)
        return PartyPage(tuple(items), nxt, strategy)


async def _items(session: AsyncSession, kind: Kind, rows: Sequence[Any]) -> list[PartyListItem]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    owner = PhoneRow.client_id if kind is Kind.CLIENT else PhoneRow.lead_id
    phones: dict[int | None, list[str]] = {}
    for pid, e164 in await session.execute(
        select(owner, PhoneRow.e164).where(owner.in_(ids)).order_by(PhoneRow.id)
    ):
        phones.setdefault(pid, []).append(e164)
    if kind is Kind.CLIENT:
        # A client reached only through its contact persons shows their numbers.
        for pid, e164 in await session.execute(
            select(ClientContactRow.client_id, PhoneRow.e164)
            .join(PhoneRow, PhoneRow.contact_id == ClientContactRow.contact_id)
            .where(ClientContactRow.client_id.in_(ids))
            .order_by(PhoneRow.id)
        ):
            phones.setdefault(pid, []).append(e164)
    deal_owner = DealRow.client_id if kind is Kind.CLIENT else DealRow.lead_id
    deals = dict(
        (
            await session.execute(
                select(deal_owner, func.count())
                .where(deal_owner.in_(ids), DealRow.status == "open")
                .group_by(deal_owner)
            )
        ).all()
    )
    last_calls = dict(
        (
            await session.execute(
                select(CallRow.party_id, func.max(CallRow.started_at))
                .where(CallRow.party_kind == kind.value, CallRow.party_id.in_(ids))
                .group_by(CallRow.party_id)
            )
        ).all()
    )
    manager_ids = sorted({r.manager_id for r in rows if r.manager_id is not None})
    names = dict(
        (
            await session.execute(
                select(ManagerRow.id, ManagerRow.name).where(ManagerRow.id.in_(manager_ids))
            )
        ).all()
    )
    items = []
    for r in rows:
        last: Any = last_calls.get(r.id)
        if isinstance(last, str):  # SQLite's max() of a datetime column is its text
            last = datetime.fromisoformat(last)
        items.append(
            PartyListItem(
                kind=kind,
                id=r.id,
                name=r.name,
                company=r.company if kind is Kind.LEAD else None,
                category=r.category if kind is Kind.CLIENT else None,
                status=r.status if kind is Kind.LEAD else None,
                manager_id=r.manager_id,
                manager_name=names.get(r.manager_id),
                phones=tuple(phones.get(r.id, ())[:3]),
                open_deals=int(deals.get(r.id, 0)),
                last_call_at=_utc(last),
                created_at=_utc(r.created_at) or r.created_at,
                turnover=Decimal(r.turnover) if kind is Kind.CLIENT and r.turnover is not None else None,
            )
        )
    return items
