"""Each missed inbound call's first callback, stored with the call so the calls-vs-deals report reads it instead
of matching a month's missed calls against its answered ones (issue #28: that match was 0.55 s of the report's
0.9 s on 10M calls).

A call's ``number_key`` is what a callback is matched by: the last ``callback_match_digits`` characters of the
other party's number (all of it for 0) — the caller of an answered inbound call, the dialled number of an answered
outbound one, the caller of a missed inbound call when that is a number (``+`` then digits, or digits:
``anonymous`` and junk are never called back). Any other call has none. A missed inbound call's ``callback_at`` is
the start of the first answered call with its key that started after it (no grace limit: the report applies it).

Every write of calls keeps both in the same transaction (``refresh_in`` for the keys a batch touched, old and
new); ``recompute_in`` computes them all (the migration, a changed ``callback_match_digits``, rows inserted by
other means). The digits they were computed with are stored (``callback_digits``); with none stored nothing is
kept, and the report falls back to matching the calls itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.domain import Direction, Outcome
from crmtel.store.db import Database
from crmtel.store.models import CallbackDigitsRow, CallRow

_CALLS = cast(Table, CallRow.__table__)
_DIGITS = cast(Table, CallbackDigitsRow.__table__)
_DIALABLE = re.compile(r"\+?[0-9]+")
_INBOUND, _OUTBOUND = Direction.INBOUND.value, Direction.OUTBOUND.value
_ANSWERED, _MISSED = Outcome.ANSWERED.value, Outcome.MISSED.value
# pg_advisory_xact_lock's first key: the transactions writing calls (crmtel.store.dial_attempts has 0x0C7E1).
_LOCK_CLASS = 0x0CA1B
_LOCKED = "crmtel.calls_locked"
# Keys per statement: well under SQLite's and asyncpg's limits on bound parameters.
_CHUNK = 500


def number_key(
    direction: str, outcome: str | None, caller_number: str | None, dialled: str | None, digits: int
) -> str | None:
    """The key a call is matched by for callbacks (see the module's docstring), or None."""
    if outcome == _ANSWERED and direction in (_INBOUND, _OUTBOUND):
        number = caller_number if direction == _INBOUND else dialled
    elif (
        outcome == _MISSED and direction == _INBOUND and caller_number and _DIALABLE.fullmatch(caller_number)
    ):
        number = caller_number
    else:
        return None
    if number is None:
        return None
    return number[-digits:] if digits else number


def tail_sql(dialect: str, col: ColumnElement[Any], digits: int) -> ColumnElement[Any]:
    """The last ``digits`` characters of ``col`` in SQL (all of it for 0; the whole string when shorter)."""
    if digits == 0:
        return col
    return func.right(col, digits) if dialect == "postgresql" else func.substr(col, -digits)


def dialable_sql(dialect: str, col: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether ``col`` is a number in SQL: ``+`` then digits, or digits (``anonymous``, ``++7916…`` or ``7916+…``
    is junk on both dialects)."""
    if dialect == "postgresql":
        return col.op("~", is_comparison=True)(literal(r"^\+?[0-9]+$"))
    glob = col.op("GLOB", is_comparison=True)
    return and_(
        or_(glob(literal("[0-9]*")), glob(literal("+[0-9]*"))),
        not_(func.substr(col, 2).op("GLOB", is_comparison=True)(literal("*[^0-9]*"))),
    )


def _key_sql(dialect: str, digits: int) -> ColumnElement[Any]:
    """``number_key`` in SQL, for recomputing every row in place (the same rule as ``number_key``)."""
    c = _CALLS.c
    answered = c.outcome == _ANSWERED
    return case(
        (and_(answered, c.direction == _INBOUND), tail_sql(dialect, c.caller_number, digits)),
        (and_(answered, c.direction == _OUTBOUND), tail_sql(dialect, c.dialled, digits)),
        (
            and_(c.outcome == _MISSED, c.direction == _INBOUND, dialable_sql(dialect, c.caller_number)),
            tail_sql(dialect, c.caller_number, digits),
        ),
        else_=None,
    )


def _first_callback() -> Any:
    """The start of the first answered call with the updated row's key after it (null when none)."""
    calls = _CALLS
    back = calls.alias("cb_back")
    return (
        select(func.min(back.c.started_at))
        .where(
            back.c.number_key == calls.c.number_key,
            back.c.outcome == _ANSWERED,
            back.c.started_at > calls.c.started_at,
        )
        .scalar_subquery()
    )


def _missed() -> ColumnElement[bool]:
    c = _CALLS.c
    return and_(c.outcome == _MISSED, c.direction == _INBOUND)


async def lock_calls_in(session: AsyncSession) -> None:
    """Serialise the transactions that write calls, from here to their end (PostgreSQL; SQLite writes are serial).

    A write recomputes the callbacks of its numbers from what is committed: without this, two transactions
    writing a missed call and its callback at once would each miss the other's row. Taken before the first call
    row is written, once per transaction.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    tx = session.get_transaction()
    if tx is None or session.info.get(_LOCKED) is tx:
        return
    await session.execute(text("SELECT pg_advisory_xact_lock(:cls, 0)"), {"cls": _LOCK_CLASS})
    session.info[_LOCKED] = tx


async def digits_in(session: AsyncSession) -> int | None:
    """The digits the stored keys were computed with (None: none stored, nothing is kept)."""
    return (await session.execute(select(CallbackDigitsRow.digits))).scalar_one_or_none()


async def keys_before_write(
    session: AsyncSession, calls: Sequence[tuple[str, str]]
) -> tuple[int | None, set[str]]:
    """The stored digits, and the keys these calls (by ``(pbx, linkedid)``) have now as answered calls (only an
    answered call is another call's callback): one round trip."""
    c = _CALLS.c
    parts = [select(CallbackDigitsRow.digits.label("d"), literal(None).label("k"))]
    for i in range(0, len(calls), _CHUNK):
        parts.append(
            select(literal(None).label("d"), c.number_key.label("k")).where(
                tuple_(c.pbx, c.linkedid).in_(list(calls[i : i + _CHUNK])),
                c.number_key.is_not(None),
                c.outcome == _ANSWERED,
            )
        )
    digits: int | None = None
    keys: set[str] = set()
    rows: list[Any] = list((await session.execute(parts[0].union_all(*parts[1:]))).all())
    for d, k in rows:
        if d is not None:
            digits = int(d)
        if k is not None:
            keys.add(k)
    return digits, keys


async def refresh_in(session: AsyncSession, keys: Iterable[str | None]) -> None:
    """Recompute ``callback_at`` of the missed calls with these keys (after calls with them were written)."""
    wanted = sorted({k for k in keys if k is not None})
    c = _CALLS.c
    first = _first_callback()
    for i in range(0, len(wanted), _CHUNK):
        await session.execute(
            update(_CALLS)
            .where(c.number_key.in_(wanted[i : i + _CHUNK]), _missed(), c.callback_at.is_distinct_from(first))
            .values(callback_at=first)
        )


async def refresh_calls_in(session: AsyncSession, calls: Sequence[tuple[str, str]]) -> None:
    """Recompute ``callback_at`` of these calls (by ``(pbx, linkedid)``) themselves, when missed."""
    c = _CALLS.c
    first = _first_callback()
    for i in range(0, len(calls), _CHUNK):
        await session.execute(
            update(_CALLS)
            .where(
                tuple_(c.pbx, c.linkedid).in_(list(calls[i : i + _CHUNK])),
                _missed(),
                c.number_key.is_not(None),
                c.callback_at.is_distinct_from(first),
            )
            .values(callback_at=first)
        )


async def delete_calls_in(session: AsyncSession, *conds: ColumnElement[bool]) -> None:
    """Delete the calls matching ``conds`` and recompute the callbacks they may have been."""
    await lock_calls_in(session)
    c = _CALLS.c
    gone = await session.execute(delete(_CALLS).where(*conds).returning(c.number_key, c.outcome))
    # Only an answered call was another's callback: a missed one of a busy number changes no other row.
    await refresh_in(session, (k for k, outcome in gone.all() if outcome == _ANSWERED))


def recompute_statements(dialect: str, digits: int) -> list[Any]:
    """The statements that compute every call's key and callback anew with ``digits`` and store the digits (run
    in one transaction: by ``recompute_in``, and by migration 0023 over the rows already stored)."""
    c = _CALLS.c
    key = _key_sql(dialect, digits)
    first = case((and_(_missed(), c.number_key.is_not(None)), _first_callback()), else_=None)
    return [
        # Only rows whose values change are rewritten: a recompute with the same digits writes nothing.
        update(_CALLS).where(c.number_key.is_distinct_from(key)).values(number_key=key),
        update(_CALLS)
        .where(or_(c.callback_at.is_not(None), and_(_missed(), c.number_key.is_not(None))))
        .where(c.callback_at.is_distinct_from(first))
        .values(callback_at=first),
        delete(_DIGITS),
        insert(_DIGITS).values(id=1, digits=digits),
    ]


async def recompute_in(session: AsyncSession, digits: int) -> None:
    """Compute every call's key and callback anew with ``digits`` and store the digits (the full recompute)."""
    # Writers wait for it: one that read the old digits before this committed would key its calls with them.
    await lock_calls_in(session)
    conn = await session.connection()
    for stmt in recompute_statements(conn.dialect.name, digits):
        await conn.execute(stmt)


async def match_digits(db: Database, digits: int) -> bool:
    """Recompute the stored callbacks when they were computed with other digits (start-up); True if it did."""
    async with db.session() as session:
        # Locked before the digits are read: two nodes starting at once recompute one after the other.
        await lock_calls_in(session)
        if await digits_in(session) == digits:
            return False
        await recompute_in(session, digits)
    return True
