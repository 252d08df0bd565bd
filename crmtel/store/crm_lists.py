"""The client and lead lists: search, filters, sort and keyset paging that stay fast at a million parties.

A search token is a prefix of a stored term (``party_terms``, see ``crmtel.crm.search``). Each token is first
probed: how many terms start with it, counting at most ``NARROW``. Then one of six plans:

- *terms*: a narrow token's parties (at most ``NARROW``) are read from the term index; only they are filtered
  and sorted in the list's order. A head's search in name order without filters never touches those rows:
  the term index holds each party's sort key, so the page is ordered there and only its own rows are read.
- *manager*: every token is broad but the list is one manager's: that manager's rows are walked in the list's
  order (their own index), each checked with an index probe.
- *term walk*: every token is broad, the list in name order (either way), for a head or a manager: the term
  index of the most specific token is walked in (term, name) order — exact words before longer ones, by name
  within each; backwards for descending — by one statement that checks each entry against the other tokens,
  the filters and what the viewer may see, and stops at the page's end or the index's.
- *newest*: every token is broad, the list newest first, and the rarest token has fewer than ``CANDIDATES``
  terms spread over at most ``BRANCHES`` distinct words: the words are walked newest first in the term index
  (it holds each party's ``created_at``) side by side, a batch at a time, each entry checked like the term
  walk's, a word only until its walk is past the page's last match (``ип кузн``: ~1,200 entries a page, not
  ~15,000; and not ~4,500, which reading «кузнецова», matched by no «ИП», to its end cost). The rarest token
  is chosen by counting each token's terms up to ``CANDIDATES`` (a token with more walks the list); one
  request counts a prefix once per bound.
- *candidates*: the same with more distinct words: the rarest token's parties are read from the term index,
  checked against the other tokens, and the database sorts those (``ип кузн``: ~1,600 parties from ~15,000
  terms).
- *walk*: every token is broad and common, the list newest first: the rows the viewer may see are walked in
  that order (the list's own index), in batches that grow from ``WALK_BATCH`` to ``MAX_WALK`` rows, each batch
  checked against the tokens by the term index, until the page is full or the list ends. A page is empty only
  when no matching row is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crmtel.crm.models import Cursor, Kind, PartyListItem, PartyPage, PartyQuery, Sort, Viewer
from crmtel.crm.search import Token, prefix_range
from crmtel.store.db import Database
from crmtel.store.models import (
    CallRow,
    ClientRow,
    DealRow,
    LeadRow,
    ManagerRow,
    PartyShareRow,
    PartyTermRow,
)
from crmtel.store.party_numbers import numbers_in

# A token matching fewer terms than this is read from the term index first.
NARROW = 5000
# The walk checks rows this many at a time at first, doubling up to MAX_WALK a batch.
WALK_BATCH = 250
MAX_WALK = 5000
# A broad search sorted newest first reads the matches of its rarest token (and checks the others) when that
# token has fewer terms than this, and sorts them, instead of walking the list: a rare pair of common words
# («ип кузн»: ~1,500 of 800,000 clients) walked ~27,000 rows a page.
CANDIDATES = 20_000
# ... and, newest first, walks each of that token's terms newest first when it has at most this many distinct
# terms (``ип кузн``: «кузнецов», «кузнецова», …), stopping at the page, instead of sorting all its matches.
BRANCHES = 32


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _aware(position: tuple[Any, int]) -> tuple[datetime, int]:
    """A (created_at, id) position as the database gave it, with its time in UTC (SQLite's is naive)."""
    return _utc(position[0]) or position[0], position[1]


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
    # One expression for "own or unassigned" (not an OR of two index lookups): the list is then walked in
    # its own order instead of gathering every visible row to sort it.
    return or_(func.coalesce(t.manager_id, viewer.manager_id) == viewer.manager_id, t.id.in_(shared))


def _token_match(kind: Kind, token: Token, party_id: Any) -> ColumnElement[bool]:
    ranges = []
    for prefix in token.prefixes:
        low, high = prefix_range(prefix)
        ranges.append(and_(PartyTermRow.term >= low, PartyTermRow.term < high))
    return exists().where(PartyTermRow.kind == kind.code, PartyTermRow.party_id == party_id, or_(*ranges))


class _Counts:
    """How many terms start with each prefix, as far as one request has counted them: every plan asks again,
    and the walk's rarest token with a larger bound, so a prefix is counted once unless the count it has hit
    its bound and a larger one is asked (each count reads up to that many index entries)."""

    def __init__(self, session: AsyncSession, kind: Kind) -> None:
        self._session = session
        self._kind = kind
        self._seen: dict[str, tuple[int, int]] = {}  # prefix -> (count, the bound it was counted to)

    async def of(self, token: Token, bound: int | None = None) -> int:
        """The token's terms (any of its prefixes), counting at most ``bound`` (``NARROW``) per prefix."""
        bound = NARROW if bound is None else bound
        total = 0
        for prefix in token.prefixes:
            count, counted_to = self._seen.get(prefix, (0, -1))
            if count >= counted_to and counted_to < bound:  # never counted, or stopped short of this bound
                low, high = prefix_range(prefix)
                inner = (
                    select(PartyTermRow.party_id)
                    .where(
                        PartyTermRow.kind == self._kind.code,
                        PartyTermRow.term >= low,
                        PartyTermRow.term < high,
                    )
                    .limit(bound)
                    .subquery()
                )
                count = (await self._session.execute(select(func.count()).select_from(inner))).scalar_one()
                self._seen[prefix] = (count, bound)
            total += min(count, bound)
        return total

    async def rarest(self, tokens: Sequence[Token]) -> tuple[int, int]:
        """The count (at most ``CANDIDATES``) and index of the token with the fewest terms, the first of equals;
        each token is counted only as far as the rarest before it."""
        best, rarest = CANDIDATES, 0
        for i, tok in enumerate(tokens):
            if (count := await self.of(tok, best)) < best:
                best, rarest = count, i
        return best, rarest


async def _candidates(
    session: AsyncSession, kind: Kind, tokens: Sequence[Token], counts: _Counts
) -> list[int] | None:
    """The parties that match every token, read from the rarest token's terms and checked against the others
    by the term index's primary key; None when every token has ``CANDIDATES`` terms or more."""
    count, rarest = await counts.rarest(tokens)
    if count >= CANDIDATES:
        return None
    driver = tokens[rarest]
    pt = aliased(PartyTermRow)
    ranges = [and_(pt.term >= lo, pt.term < hi) for lo, hi in map(prefix_range, driver.prefixes)]
    others = [_token_match(kind, tok, pt.party_id) for i, tok in enumerate(tokens) if i != rarest]
    stmt = select(pt.party_id).where(pt.kind == kind.code, or_(*ranges), *others).distinct()
    return list((await session.execute(stmt)).scalars())


async def _terms_of(session: AsyncSession, kind: Kind, token: Token, bound: int) -> list[str] | None:
    """The distinct terms the token's prefixes match, skipping from one to the next through the index (one
    statement, not a scan of their entries); None when there are more than ``bound``."""
    found: list[str] = []
    for prefix in token.prefixes:
        low, high = prefix_range(prefix)
        # A loose index scan: each step is the first term after the previous one.
        statement = text(
            "WITH RECURSIVE walk(term) AS ("
            " SELECT (SELECT term FROM party_terms WHERE kind = :kind AND term >= :low AND term < :high"
            " ORDER BY term LIMIT 1)"
            " UNION ALL"
            " SELECT (SELECT p.term FROM party_terms p WHERE p.kind = :kind AND p.term > walk.term"
            " AND p.term < :high ORDER BY p.term LIMIT 1) FROM walk WHERE walk.term IS NOT NULL"
            ") SELECT term FROM walk WHERE term IS NOT NULL LIMIT :n"
        )
        params = {"kind": kind.code, "low": low, "high": high, "n": bound + 1}
        found.extend(str(t) for t in (await session.execute(statement, params)).scalars())
        if len(found) > bound:
            return None
    return sorted(set(found))


async def _newest(
    session: AsyncSession,
    q: PartyQuery,
    viewer: Viewer,
    now: datetime,
    tokens: Sequence[Token],
    counts: _Counts,
) -> PartyPage | None:
    """A broad search newest first whose rarest token has fewer than ``CANDIDATES`` entries spread over at most
    ``BRANCHES`` distinct terms: those terms are walked newest first in the term index (it holds each party's
    ``created_at``) from the cursor, side by side, every entry checked against the other tokens, the filters
    and what the viewer may see; a party under two of the terms is listed once. None when the rarest token is
    too common for this plan.

    Each round reads the next batch of entries (from four pages' worth, doubling up to ``MAX_WALK``) of every
    term that may still hold one of the page's parties: one not yet read to its end whose last entry read is
    newer than the page's last party so far. So the page is exact, and a term with few matches is read only as
    far back as the others' matches reach: walked to a page's worth of matches each, ``ип кузн`` read all
    ~4,000 «кузнецова» entries a page (there is no «ИП Кузнецова») while ~400 «кузнецов» entries filled it."""
    count, rarest = await counts.rarest(tokens)
    if count >= CANDIDATES:
        return None
    words = await _terms_of(session, q.kind, tokens[rarest], BRANCHES)
    if words is None:
        return None
    t = table_of(q.kind)
    pt = aliased(PartyTermRow)
    filters = _filters(q, viewer, now, paged=False)

    def hit(party_id: Any) -> ColumnElement[int]:
        """1 when the entry's party matches the other tokens, the filters and the viewer, else 0."""
        checks = [_token_match(q.kind, tok, party_id) for i, tok in enumerate(tokens) if i != rarest]
        if filters:
            checks.append(exists().where(t.id == party_id, *filters))
        return case((and_(*checks), 1), else_=0) if checks else literal(1)

    # Where each term's walk is: the (created_at, party_id) of the last entry read, as the database gave it.
    start = (datetime.fromisoformat(q.after.key), q.after.id) if q.after is not None else None
    position: dict[str, tuple[Any, int] | None] = dict.fromkeys(words, start)
    found: dict[int, datetime] = {}
    todo = list(words)
    # Four pages' worth first: a word with a match in eight entries («ип кузн») then takes two rounds, not four.
    size = 4 * (q.limit + 1)
    while todo:
        walks = []
        for word in todo:
            stmt = select(pt.term, pt.created_at, pt.party_id).where(pt.kind == q.kind.code, pt.term == word)
            if (mark := position[word]) is not None:
                stmt = stmt.where(tuple_(pt.created_at, pt.party_id) < tuple_(*mark))
            batch = stmt.order_by(pt.created_at.desc(), pt.party_id.desc()).limit(size).subquery()
            # Checked after the limit: checked in the same select, PostgreSQL hashed every entry of the other
            # tokens (~60,000 for «ип») to check 51.
            walks.append(select(*batch.c, hit(batch.c.party_id).label("hit")))
        read: dict[str, int] = {}
        oldest: dict[str, tuple[Any, int]] = {}
        for word, created, pid, matched in (await session.execute(union_all(*walks))).all():
            read[word] = read.get(word, 0) + 1
            if word not in oldest or (created, pid) < oldest[word]:
                oldest[word] = (created, int(pid))
            if matched:
                found[int(pid)] = _utc(created) or created
        position.update(oldest)
        todo = [word for word in todo if read.get(word, 0) == size]  # the others were read to their end
        if len(found) > q.limit:
            # The page's last party so far (and the one after it, which says there is a next page): a term
            # whose walk is already past it holds no party the page still lacks.
            last = sorted(((at, pid) for pid, at in found.items()), reverse=True)[q.limit]
            todo = [word for word in todo if _aware(oldest[word]) > last]
        size = min(size * 2, MAX_WALK)
    ranked = sorted(found.items(), key=lambda entry: (entry[1], entry[0]), reverse=True)
    page = ranked[: q.limit]
    items = await _items(session, q.kind, await _rows(session, t, [pid for pid, _ in page]))
    nxt = Cursor(cursor_key(page[-1][1]), page[-1][0]) if len(ranked) > q.limit else None
    return PartyPage(tuple(items), nxt, "newest")


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


def _filters(
    q: PartyQuery, viewer: Viewer, now: datetime, *, paged: bool = True
) -> list[ColumnElement[bool]]:
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
    if paged and q.after is not None:
        conds.append(_after(q.kind, q.sort, q.after))
    return conds


class PartyLists:
    """Client and lead lists over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, q: PartyQuery, viewer: Viewer, *, now: datetime | None = None) -> PartyPage:
        """One page of the list, in ``q.sort`` order, after ``q.after`` (see the module docstring)."""
        now = now or datetime.now(UTC)
        t = table_of(q.kind)
        async with self._db.session() as session:
            strategy = "list"
            broad: list[Token] = []
            counts = _Counts(session, q.kind)
            if q.tokens:
                probes = [(await counts.of(tok), tok) for tok in q.tokens]
                narrow = [tok for n, tok in probes if n < NARROW]
                broad = [tok for n, tok in probes if n >= NARROW]
                if (q.after is not None and q.after.term is not None) or (
                    not narrow and q.manager_id is None and not q.unassigned
                ):
                    names = q.sort in (Sort.NAME, Sort.NAME_DESC)
                    if names and (q.after is None or q.after.term is not None):
                        return await self._term_walk(session, q, viewer, now, list(q.tokens))
                    return await self._walk(session, q, viewer, now, list(q.tokens), counts)
                strategy = "terms" if narrow else "manager"
                if narrow and _by_terms_alone(q, viewer):
                    driver = min(probes, key=lambda probe: probe[0])[1]
                    return await self._terms_alone(session, q, driver)
            conds = _filters(q, viewer, now)
            if narrow_ids := (await _narrow_ids(session, q, narrow) if q.tokens and narrow else None):
                conds.append(t.id.in_(sorted(narrow_ids)))
            elif q.tokens and narrow:
                return PartyPage((), None, strategy)
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

    async def _terms_alone(self, session: AsyncSession, q: PartyQuery, driver: Token) -> PartyPage:
        """A head's search in name order with no filter, its narrowest token under ``NARROW`` terms: the page
        is read from the term index alone (it holds each party's sort key), the other tokens checked by the
        index's primary key — no client or lead row is touched but the page's own. Reading and sorting every
        matching row instead cost up to ``NARROW`` random row reads a page (a common surname: 4,000)."""
        t = table_of(q.kind)
        pt = aliased(PartyTermRow)
        ranges = [and_(pt.term >= lo, pt.term < hi) for lo, hi in map(prefix_range, driver.prefixes)]
        others = [_token_match(q.kind, tok, pt.party_id) for tok in q.tokens if tok is not driver]
        desc = q.sort is Sort.NAME_DESC
        stmt = (
            select(pt.name_key, pt.party_id).where(pt.kind == q.kind.code, or_(*ranges), *others).distinct()
        )
        if q.after is not None:
            position = tuple_(pt.name_key, pt.party_id)
            mark = tuple_(q.after.key, q.after.id)
            stmt = stmt.where(position < mark if desc else position > mark)
        order = (pt.name_key.desc(), pt.party_id.desc()) if desc else (pt.name_key, pt.party_id)
        found = (await session.execute(stmt.order_by(*order).limit(q.limit + 1))).all()
        page = found[: q.limit]
        items = await _items(session, q.kind, await _rows(session, t, [int(pid) for _, pid in page]))
        nxt = Cursor(str(page[-1][0]), int(page[-1][1])) if len(found) > q.limit else None
        return PartyPage(tuple(items), nxt, "terms")

    async def _walk(
        self,
        session: AsyncSession,
        q: PartyQuery,
        viewer: Viewer,
        now: datetime,
        tokens: list[Token],
        counts: _Counts,
    ) -> PartyPage:
        """Every token broad, the list everyone's: when the rarest token has fewer than ``CANDIDATES`` terms its
        matches are sorted (``_sorted``); otherwise the parties the viewer may see are walked in the list's own
        order (its index), a batch at a time, each batch checked against the tokens by the term index, until
        the page is full or the list ends — so the requested sort holds and a page is never empty while a
        matching row is left. Batches grow from ``WALK_BATCH`` to ``MAX_WALK`` rows."""
        t = table_of(q.kind)
        key, ident, desc = _sort_columns(q.kind, q.sort)
        order = (key.desc(), ident.desc()) if desc else (key, ident)
        if q.sort is Sort.CREATED_DESC and (newest := await _newest(session, q, viewer, now, tokens, counts)):
            return newest
        if (candidates := await _candidates(session, q.kind, tokens, counts)) is not None:
            return await _sorted(session, q, viewer, now, candidates)
        conds = _filters(q, viewer, now, paged=False)
        matches = [_token_match(q.kind, tok, t.id) for tok in tokens]
        position = Cursor(q.after.key, q.after.id) if q.after is not None else None
        found: list[Any] = []
        size = WALK_BATCH
        exhausted = False
        while len(found) <= q.limit:
            stmt = select(t.id, key).where(*conds)
            if position is not None:
                stmt = stmt.where(_after(q.kind, q.sort, position))
            batch = (await session.execute(stmt.order_by(*order).limit(size))).all()
            if not batch:
                exhausted = True
                break
            last_id, last_key = batch[-1]
            position = Cursor(
                cursor_key(_utc(last_key) if isinstance(last_key, datetime) else last_key), last_id
            )
            ids = [r[0] for r in batch]
            # Only the ids are checked: whole rows are read for the page alone (building thousands of
            # row objects for a broad word cost more than its queries).
            hits = set((await session.execute(select(t.id).where(t.id.in_(ids), *matches))).scalars())
            found.extend(i for i in ids if i in hits)
            if len(batch) < size:
                exhausted = True
                break
            size = min(size * 2, MAX_WALK)
        page = await _rows(session, t, found[: q.limit])
        items = await _items(session, q.kind, page)
        nxt = None
        if len(found) > q.limit or (not exhausted and page):
            last = page[-1]
            raw = last.created_at if q.sort is Sort.CREATED_DESC else last.name_key
            nxt = Cursor(cursor_key(_utc(raw) if isinstance(raw, datetime) else raw), last.id)
        return PartyPage(tuple(items), nxt, "walk")

    async def _term_walk(
        self, session: AsyncSession, q: PartyQuery, viewer: Viewer, now: datetime, tokens: list[Token]
    ) -> PartyPage:
        """A broad search in name order, a head's or a manager's: the term index of the most specific token is
        walked in (term, name) order (backwards for descending) — a party is listed under the first word it
        matched, exact words before longer ones, by name within each — and each entry checked against the
        other tokens (the term index's primary key), the filters and what the viewer may see, by one statement
        that stops at the page's end, then one small read keeping each party under its first word only (again
        when that dropped a row). Never an empty page with more to come; the whole list is not walked when the
        matches sit at its end (companies «ООО …» after every person). Walking it from Python in batches cost
        a round trip and a re-read of each batch's terms per batch."""
        t = table_of(q.kind)
        # The most specific token leads (the longest prefix); the others are checked on each candidate.
        driver = max(tokens, key=lambda tok: max(len(p) for p in tok.prefixes))
        others = [tok for tok in tokens if tok is not driver]
        low, high = prefix_range(driver.prefixes[0])
        pt = aliased(PartyTermRow)
        conds: list[ColumnElement[bool]] = [pt.kind == q.kind.code, pt.term >= low, pt.term < high]
        conds.extend(_token_match(q.kind, tok, pt.party_id) for tok in others)
        if filters := _filters(q, viewer, now, paged=False):
            conds.append(exists().where(t.id == pt.party_id, *filters))
        columns = (pt.term, pt.name_key, pt.party_id)
        # Descending, the index is walked backwards: the same listing as ascending, in reverse.
        desc = q.sort is Sort.NAME_DESC
        position = (q.after.term, q.after.key, q.after.id) if q.after is not None and q.after.term else None
        order = tuple(c.desc() for c in columns) if desc else columns
        found: list[tuple[str, str, int]] = []
        while len(found) <= q.limit:
            stmt = select(*columns).where(*conds)
            if position is not None:
                here = tuple_(*columns)
                stmt = stmt.where(here < tuple_(*position) if desc else here > tuple_(*position))
            size = q.limit + 1 - len(found)
            batch = [
                (str(a), str(b), int(c))
                for a, b, c in (await session.execute(stmt.limit(size).order_by(*order))).all()
            ]
            if not batch:
                break
            position = batch[-1]
            # A party is listed once: under the first of its words the prefix matches. Checked on the rows
            # found (a party rarely has two such words) rather than on every entry walked: in the statement
            # it was most of the walk's time.
            first = dict(
                (
                    await session.execute(
                        select(PartyTermRow.party_id, func.min(PartyTermRow.term))
                        .where(
                            PartyTermRow.kind == q.kind.code,
                            PartyTermRow.party_id.in_(sorted({pid for _, _, pid in batch})),
                            PartyTermRow.term >= low,
                            PartyTermRow.term < high,
                        )
                        .group_by(PartyTermRow.party_id)
                    )
                ).all()
            )
            found.extend(row for row in batch if first.get(row[2]) == row[0])
            if len(batch) < size:
                break
        page = found[: q.limit]
        items = await _items(session, q.kind, await _rows(session, t, [pid for _, _, pid in page]))
        nxt = None
        if len(found) > q.limit:
            term, key, pid = page[-1]
            nxt = Cursor(key, pid, term)
        return PartyPage(tuple(items), nxt, "walk")


async def _sorted(
    session: AsyncSession, q: PartyQuery, viewer: Viewer, now: datetime, ids: Sequence[int]
) -> PartyPage:
    """The page of these candidates (every match of the search) the filters and the viewer keep, in the list's
    order after the cursor: the database sorts at most ``CANDIDATES`` rows by their primary key."""
    if not ids:
        return PartyPage((), None, "candidates")
    t = table_of(q.kind)
    key, ident, desc = _sort_columns(q.kind, q.sort)
    order = (key.desc(), ident.desc()) if desc else (key, ident)
    stmt = (
        select(t).where(t.id.in_(sorted(ids)), *_filters(q, viewer, now)).order_by(*order).limit(q.limit + 1)
    )
    rows = list((await session.execute(stmt)).scalars().all())
    page = rows[: q.limit]
    items = await _items(session, q.kind, page)
    nxt = None
    if len(rows) > q.limit:
        last = page[-1]
        raw = last.created_at if q.sort is Sort.CREATED_DESC else last.name_key
        nxt = Cursor(cursor_key(_utc(raw) if isinstance(raw, datetime) else raw), last.id)
    return PartyPage(tuple(items), nxt, "candidates")


def _by_terms_alone(q: PartyQuery, viewer: Viewer) -> bool:
    """Whether a narrow search needs nothing but the term index to order its page (see ``_terms_alone``)."""
    unfiltered = (
        q.manager_id is None
        and not q.unassigned
        and q.open_deals is None
        and q.silent_days is None
        and not (q.kind is Kind.LEAD and q.lead_status)
    )
    return viewer.head and unfiltered and q.sort in (Sort.NAME, Sort.NAME_DESC)


async def _rows(session: AsyncSession, t: Any, ids: Sequence[int]) -> list[Any]:
    """The rows of these ids, in their order."""
    if not ids:
        return []
    by_id = {r.id: r for r in (await session.execute(select(t).where(t.id.in_(list(ids))))).scalars()}
    return [by_id[i] for i in ids if i in by_id]


async def _narrow_ids(session: AsyncSession, q: PartyQuery, narrow: list[Token]) -> set[int]:
    ids: set[int] | None = None
    for tok in narrow:
        found = await _ids(session, q.kind, tok)
        ids = found if ids is None else ids & found
    return ids or set()


async def _items(session: AsyncSession, kind: Kind, rows: Sequence[Any]) -> list[PartyListItem]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    phones = await numbers_in(session, kind, ids)
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
                phones=tuple(p.e164 for p in phones.get(r.id, ())),
                open_deals=int(deals.get(r.id, 0)),
                last_call_at=_utc(last),
                created_at=_utc(r.created_at) or r.created_at,
                turnover=Decimal(r.turnover) if kind is Kind.CLIENT and r.turnover is not None else None,
            )
        )
    return items
