"""The connectors' outbox: staged effects, workers' claims, the delivery log, failed events and replays."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crmtel.connectors.models import Attempt, Backlog, FailedEvent, Kind, OutboxEvent, Staged, State, Verdict
from crmtel.store.db import Database
from crmtel.store.models import ConnectorCallRow, ConnectorDeliveryRow, ConnectorEventRow, ConnectorTokenRow

# The delivery log keeps this much of an answer (a CRM's error page may be large).
ANSWER_LIMIT = 2000


@functools.cache
def _insert_ignore(dialect: str) -> Any:
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(ConnectorEventRow).on_conflict_do_nothing(
        index_elements=[ConnectorEventRow.connector, ConnectorEventRow.key]
    )


async def stage_in(session: AsyncSession, connector: str, staged: Sequence[Staged], now: datetime) -> None:
    """Add effects for ``connector`` in the caller's transaction; a key already staged adds nothing."""
    if not staged:
        return
    conn = await session.connection()
    rows = [
        {
            "connector": connector,
            "key": s.key[:255],
            "pbx": s.pbx,
            "linkedid": s.linkedid,
            "kind": s.kind.value,
            "payload": s.payload,
            "created_at": now,
            "state": State.PENDING.value,
            "attempts": 0,
            "next_at": now,
        }
        for s in staged
    ]
    await conn.execute(_insert_ignore(conn.dialect.name), rows)


def _event(row: ConnectorEventRow, lapsed: bool = False) -> OutboxEvent:
    return OutboxEvent(
        row.id,
        row.connector,
        row.key,
        row.pbx,
        row.linkedid,
        Kind(row.kind),
        dict(row.payload),
        row.attempts,
        row.created_at,
        lapsed,
        row.last_error,
    )


class OutboxRepository:
    """Claims, results, memos and the admin's views of the outbox."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, connector: str, node: str, now: datetime, lease: timedelta, limit: int
    ) -> list[tuple[OutboxEvent, dict[str, Any]]]:
        """Take up to ``limit`` due events, each the first undelivered one of its call, with its call's memo."""
        e = ConnectorEventRow
        before = aliased(ConnectorEventRow)
        earlier = (
            select(before.id)
            .where(
                before.connector == e.connector,
                before.pbx == e.pbx,
                before.linkedid == e.linkedid,
                before.id < e.id,
                before.state != State.DELIVERED.value,
            )
            .exists()
        )
        free = (e.claimed_until.is_(None)) | (e.claimed_until < now)
        async with self.db.session() as session:
            found = (
                await session.execute(
                    select(e.id, e.claimed_by)
                    .where(
                        e.connector == connector,
                        e.state == State.PENDING.value,
                        e.next_at <= now,
                        free,
                        ~earlier,
                    )
                    .order_by(e.id)
                    .limit(limit)
                )
            ).all()
            ids = [row_id for row_id, _ in found]
            # Settling or releasing clears claimed_by: one still set on a free row is a claim that lapsed.
            lapsed = {row_id for row_id, holder in found if holder is not None}
            if not ids:
                return []
            # The claim itself re-checks that nobody else holds the row (two nodes may have read the same ids).
            won = (
                (
                    await session.execute(
                        update(e)
                        .where(e.id.in_(ids), e.state == State.PENDING.value, free)
                        .values(claimed_by=node, claimed_until=now + lease)
                        .returning(e.id)
                    )
                )
                .scalars()
                .all()
            )
            if not won:
                return []
            rows = (await session.execute(select(e).where(e.id.in_(won)).order_by(e.id))).scalars().all()
            memos = await self._memos(session, connector, rows)
        return [(_event(r, r.id in lapsed), memos.get((r.pbx, r.linkedid), {})) for r in rows]

    async def _memos(
        self, session: AsyncSession, connector: str, rows: Sequence[ConnectorEventRow]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        keys = {(r.pbx, r.linkedid) for r in rows}
        if not keys:
            return {}
        c = ConnectorCallRow
        found = await session.execute(
            select(c.pbx, c.linkedid, c.memo).where(
                c.connector == connector, tuple_(c.pbx, c.linkedid).in_(sorted(keys))
            )
        )
        return {(pbx, linkedid): dict(memo) for pbx, linkedid, memo in found.all()}

    async def settle(
        self,
        event: OutboxEvent,
        attempt: Attempt,
        *,
        node: str,
        now: datetime,
        next_at: datetime | None,
    ) -> str:
        """Record one attempt (see ``settle_many``); returns the event's new state."""
        (state,) = await self.settle_many([(event, attempt, next_at)], node=node, now=now)
        return state

    async def settle_many(
        self,
        results: Sequence[tuple[OutboxEvent, Attempt, datetime | None]],
        *,
        node: str,
        now: datetime,
    ) -> list[str]:
        """Record attempts in the log and move their events on, in one transaction; returns the new states.

        ``next_at`` None with a RETRY means the event is given up (too old): it becomes failed.
        """
        e = ConnectorEventRow
        states: list[str] = []
        changes: list[dict[str, Any]] = []
        log: list[dict[str, Any]] = []
        memos: list[tuple[OutboxEvent, dict[str, Any]]] = []
        for event, attempt, next_at in results:
            if attempt.verdict is Verdict.DELIVERED:
                state, due, error, done = State.DELIVERED, now, None, now
            elif attempt.verdict is Verdict.RETRY and next_at is not None:
                state, due, error, done = State.PENDING, next_at, attempt.answer[:1000], None
            else:
                state, due, error, done = State.FAILED, now, attempt.answer[:1000], None
            attempts = event.attempts + 1
            changes.append(
                {"eid": event.id, "st": state.value, "n": attempts, "due": due, "err": error, "done": done}
            )
            log.append(
                {
                    "event_id": event.id,
                    "at": now,
                    "attempt": attempts,
                    "outcome": attempt.verdict.value if state is not State.FAILED else State.FAILED.value,
                    "status": attempt.status,
                    "answer": attempt.answer[:ANSWER_LIMIT],
                    "node": node,
                }
            )
            if state is State.DELIVERED and attempt.memo:
                memos.append((event, attempt.memo))
            states.append(state.value)
        if not changes:
            return states
        async with self.db.session() as session:
            # Two executemany statements for the whole batch, whatever its size.
            await session.execute(insert(ConnectorDeliveryRow), log)
            conn = await session.connection()
            await conn.execute(
                update(e)
                .where(e.id == bindparam("eid"))
                .values(
                    state=bindparam("st"),
                    attempts=bindparam("n"),
                    next_at=bindparam("due"),
                    last_error=bindparam("err"),
                    delivered_at=bindparam("done"),
                    claimed_by=None,
                    claimed_until=None,
                ),
                changes,
            )
            for event, memo in memos:
                await self._save_memo(session, event, memo, now)
        return states

    async def _save_memo(
        self, session: AsyncSession, event: OutboxEvent, memo: dict[str, Any], now: datetime
    ) -> None:
        c = ConnectorCallRow
        row = await session.get(c, (event.connector, event.pbx, event.linkedid))
        if row is None:
            session.add(
                c(
                    connector=event.connector,
                    pbx=event.pbx,
                    linkedid=event.linkedid,
                    memo=memo,
                    updated_at=now,
                )
            )
        else:
            row.memo = {**row.memo, **memo}
            row.updated_at = now

    async def extend(self, ids: Sequence[int], node: str, until: datetime) -> int:
        """Keep ``node``'s claims on ``ids`` (still pending) until ``until``: a worker still delivering its batch
        must not have it taken by another node; returns how many it still holds."""
        if not ids:
            return 0
        e = ConnectorEventRow
        async with self.db.session() as session:
            result = await session.execute(
                update(e)
                .where(e.id.in_(list(ids)), e.claimed_by == node, e.state == State.PENDING.value)
                .values(claimed_until=until)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def release(self, event: OutboxEvent) -> None:
        """Give a claimed event back untouched (the worker is stopping before it was sent)."""
        e = ConnectorEventRow
        async with self.db.session() as session:
            await session.execute(
                update(e).where(e.id == event.id).values(claimed_by=None, claimed_until=None)
            )

    async def failed(self, connector: str | None = None, limit: int = 100) -> list[FailedEvent]:
        """Failed events, oldest first."""
        e = ConnectorEventRow
        query = select(e).where(e.state == State.FAILED.value).order_by(e.id).limit(limit)
        if connector is not None:
            query = query.where(e.connector == connector)
        async with self.db.session() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            FailedEvent(r.id, r.connector, r.pbx, r.linkedid, r.kind, r.attempts, r.created_at, r.last_error)
            for r in rows
        ]

    async def replay(self, ids: Sequence[int] | None, now: datetime, connector: str | None = None) -> int:
        """Make failed events pending again, due now (all failed ones when ``ids`` is None); returns how many."""
        e = ConnectorEventRow
        query = update(e).where(e.state == State.FAILED.value)
        if ids is not None:
            query = query.where(e.id.in_(list(ids)))
        if connector is not None:
            query = query.where(e.connector == connector)
        async with self.db.session() as session:
            result = await session.execute(
                query.values(state=State.PENDING.value, next_at=now, claimed_by=None, claimed_until=None)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def log(self, event_id: int) -> list[tuple[datetime, int, str, int | None, str]]:
        """The delivery log of one event: (at, attempt, outcome, HTTP status, answer)."""
        d = ConnectorDeliveryRow
        async with self.db.session() as session:
            rows = await session.execute(
                select(d.at, d.attempt, d.outcome, d.status, d.answer)
                .where(d.event_id == event_id)
                .order_by(d.id)
            )
            return [tuple(r) for r in rows.all()]  # type: ignore[misc]

    async def backlog(self, connectors: Sequence[str], now: datetime) -> list[Backlog]:
        """Pending and failed counts and the oldest pending event's age, per connector."""
        e = ConnectorEventRow
        async with self.db.session() as session:
            rows = await session.execute(
                select(e.connector, e.state, func.count(), func.min(e.created_at))
                .where(e.connector.in_(list(connectors)), e.state != State.DELIVERED.value)
                .group_by(e.connector, e.state)
            )
            found = rows.all()
        out: dict[str, Backlog] = {c: Backlog(c, 0, 0, 0.0) for c in connectors}
        for connector, state, count, oldest in found:
            b = out[connector]
            if state == State.PENDING.value:
                age = (now - _aware(oldest, now)).total_seconds() if oldest is not None else 0.0
                out[connector] = Backlog(connector, int(count), b.failed, max(0.0, age))
            else:
                out[connector] = Backlog(connector, b.pending, int(count), b.oldest_seconds)
        return list(out.values())

    async def prune(self, before: datetime, limit: int = 5000) -> int:
        """Delete events delivered before ``before`` (their log goes with them), then memos of calls with no event
        left; at most ``limit`` events a call, so a large backlog is pruned in steps. Returns events deleted."""
        e = ConnectorEventRow
        c = ConnectorCallRow
        async with self.db.session() as session:
            ids = (
                (
                    await session.execute(
                        select(e.id)
                        .where(e.state == State.DELIVERED.value, e.delivered_at < before)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            if ids:
                await session.execute(
                    delete(ConnectorDeliveryRow).where(ConnectorDeliveryRow.event_id.in_(ids))
                )
                await session.execute(delete(e).where(e.id.in_(ids)))
            left = (
                select(e.id)
                .where(e.connector == c.connector, e.pbx == c.pbx, e.linkedid == c.linkedid)
                .exists()
            )
            await session.execute(delete(c).where(c.updated_at < before, ~left))
        return len(ids)

    async def states(self, connector: str) -> dict[str, int]:
        """Events per state (tests and the bench)."""
        e = ConnectorEventRow
        async with self.db.session() as session:
            rows = await session.execute(
                select(e.state, func.count()).where(e.connector == connector).group_by(e.state)
            )
            return {s: int(n) for s, n in rows.all()}


def _aware(value: datetime, like: datetime) -> datetime:
    # SQLite hands naive datetimes back; they were written in UTC.
    if value.tzinfo is None and like.tzinfo is not None:
        return value.replace(tzinfo=like.tzinfo)
    return value


class SealedTokens:
    """A connector's sealed token blob (sealing and opening is the connector's business)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, connector: str) -> str | None:
        """The sealed text, or None before the first install."""
        async with self.db.session() as session:
            row = await session.get(ConnectorTokenRow, connector)
            return row.sealed if row is not None else None

    async def save(self, connector: str, sealed: str, now: datetime) -> None:
        """Replace the sealed text."""
        async with self.db.session() as session:
            row = await session.get(ConnectorTokenRow, connector)
            if row is None:
                session.add(ConnectorTokenRow(connector=connector, sealed=sealed, updated_at=now))
            else:
                row.sealed, row.updated_at = sealed, now

    async def delete(self, connector: str) -> None:
        """Forget the tokens (the application was uninstalled)."""
        async with self.db.session() as session:
            row = await session.get(ConnectorTokenRow, connector)
            if row is not None:
                await session.delete(row)


async def save_memo(
    db: Database, connector: str, pbx: str, linkedid: str, memo: dict[str, Any], now: datetime
) -> None:
    """Remember something of a call before its events exist (a click-to-call's CRM call id)."""
    async with db.session() as session:
        row = await session.get(ConnectorCallRow, (connector, pbx, linkedid))
        if row is None:
            session.add(
                ConnectorCallRow(connector=connector, pbx=pbx, linkedid=linkedid, memo=memo, updated_at=now)
            )
        else:
            row.memo, row.updated_at = {**row.memo, **memo}, now


async def load_memo(db: Database, connector: str, pbx: str, linkedid: str) -> dict[str, Any]:
    """What was remembered (empty when nothing)."""
    async with db.session() as session:
        row = await session.get(ConnectorCallRow, (connector, pbx, linkedid))
        return dict(row.memo) if row is not None else {}
