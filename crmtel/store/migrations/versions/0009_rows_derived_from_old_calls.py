"""data: queue visits of calls stored before 0004_queue_visits; callback tasks a later answered call closes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 13:00:00

Two tables of earlier revisions derive from call rows, and were left empty (or stale) for the rows stored
before them:

- ``call_queue_visits`` / ``call_queue_offers`` (0004_queue_visits): the queue report reads only these, so
  every month before that upgrade showed no queue traffic. An ended inbound call with a ``queue`` and no
  visit gets one visit, the way the call service writes one (``crmtel.store.queue_visits.visit_rows``). Old
  rows do not know when the caller joined the queue nor which phones were rung before it: the wait counts
  from the call's start to its answer (or end), and every phone the call rang counts as offered.
- callback tasks closing by themselves (0007_dial_callbacks): before it a task stayed open whatever came
  after. An open task opened by a missed call is closed by the first answered call to or from its number
  that ended after the last miss counted on it (``crmtel.tasks.rules``; an answered call between two misses
  would have split the task, which one old row cannot be, so it stays open); numbers are compared by their last
  10 digits (``reports.callback_match_digits``' default; a migration has no configuration).

Not derived: the CDR watermark (its absence means "first start with a CDR source: from now on", so an old
database never turns the months before it into callback tasks), ``calls.originate_id`` (no click-to-call
existed before it), the search terms (0008_crm_workspace fills them itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
MATCH_DIGITS = 10

# Lightweight table shapes as of this revision (never the ORM models: they follow the newest schema).
_calls = sa.table(
    "calls",
    sa.column("id", sa.Integer),
    sa.column("pbx", sa.String),
    sa.column("linkedid", sa.String),
    sa.column("direction", sa.String),
    sa.column("caller_number", sa.String),
    sa.column("dialled", sa.String),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("answered_at", sa.DateTime(timezone=True)),
    sa.column("ended_at", sa.DateTime(timezone=True)),
    sa.column("rang", sa.JSON),
    sa.column("answered_by", sa.String),
    sa.column("queue", sa.String),
    sa.column("outcome", sa.String),
    sa.column("missed_reason", sa.String),
    sa.column("talk_seconds", sa.Numeric(10, 2)),
)
_visits = sa.table(
    "call_queue_visits",
    sa.column("call_id", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("queue", sa.String),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("joined_at", sa.DateTime(timezone=True)),
    sa.column("left_at", sa.DateTime(timezone=True)),
    sa.column("outcome", sa.String),
    sa.column("wait_seconds", sa.Numeric(10, 2)),
    sa.column("answered_by", sa.String),
    sa.column("talk_seconds", sa.Numeric(10, 2)),
)
_offers = sa.table(
    "call_queue_offers",
    sa.column("call_id", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("queue", sa.String),
    sa.column("extension", sa.String),
    sa.column("answered", sa.Boolean),
    sa.column("started_at", sa.DateTime(timezone=True)),
)
_tasks = sa.table(
    "tasks",
    sa.column("id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("phone", sa.String),
    sa.column("status", sa.String),
    sa.column("source", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("done_at", sa.DateTime(timezone=True)),
    sa.column("closed_by_call_id", sa.Integer),
)


def upgrade() -> None:
    bind = op.get_bind()
    _fill_queue_visits(bind)
    _close_called_back_tasks(bind)


def downgrade() -> None:
    # The rows filled here are ordinary rows of their tables (0004 and 0007 drop them when downgraded).
    pass


def _aware(value: datetime | None) -> datetime | None:
    # SQLite keeps UTC without its offset.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _fill_queue_visits(bind: sa.Connection) -> None:
    from crmtel.store.queue_visits import legacy_visit, visit_rows

    c = _calls.c
    has_visit = sa.select(_visits.c.call_id).where(_visits.c.call_id == c.id).exists()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(_calls)
            .where(
                c.id > last,
                c.direction == "inbound",
                c.queue.is_not(None),
                c.ended_at.is_not(None),
                ~has_visit,
            )
            .order_by(c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        visits: list[dict[str, Any]] = []
        offers: list[dict[str, Any]] = []
        for row in rows:
            record = legacy_visit(
                pbx=row.pbx,
                linkedid=row.linkedid,
                caller_number=row.caller_number,
                queue=row.queue,
                rang=row.rang if isinstance(row.rang, list) else [],
                answered_by=row.answered_by,
                outcome=row.outcome,
                missed_reason=row.missed_reason,
                started_at=_aware(row.started_at) or datetime.now(UTC),
                answered_at=_aware(row.answered_at),
                ended_at=_aware(row.ended_at),
                talk_seconds=float(row.talk_seconds or Decimal(0)),
            )
            v, o = visit_rows(row.id, record)
            visits.extend(v)
            offers.extend(o)
        if visits:
            bind.execute(sa.insert(_visits), visits)
        if offers:
            bind.execute(sa.insert(_offers), offers)
        last = rows[-1].id


def _tail(column: Any, dialect: str) -> Any:
    return (
        sa.func.right(column, MATCH_DIGITS)
        if dialect == "postgresql"
        else sa.func.substr(column, -MATCH_DIGITS)
    )


def _close_called_back_tasks(bind: sa.Connection) -> None:
    from crmtel.tasks.rules import MISSED, CallFacts, TaskFacts, closes

    dialect = bind.dialect.name
    t, c = _tasks.c, _calls.c
    number = sa.case((c.direction == "inbound", c.caller_number), else_=c.dialled)
    last = 0
    while True:
        tasks = bind.execute(
            sa.select(t.id, t.phone, t.source, t.created_at, t.updated_at)
            .where(t.id > last, t.kind == "callback", t.status == "open", t.phone.is_not(None))
            .order_by(t.id)
            .limit(BATCH)
        ).all()
        if not tasks:
            return
        for task in tasks:
            created = _aware(task.created_at)
            if created is None or (task.source or MISSED) != MISSED:
                continue
            # The first later answered call with the number, as the call service closes it when it ends — but
            # after the last miss counted on the task: today an answered call between two misses closes the
            # task and the second miss opens a new one; one old row cannot be split, so it stays open (the
            # later miss still wants its callback).
            last_miss = _aware(task.updated_at) or created
            closer = bind.execute(
                sa.select(c.id, c.started_at, c.ended_at, c.talk_seconds)
                .where(
                    c.outcome == "answered",
                    c.direction.in_(("inbound", "outbound")),
                    c.ended_at >= (task.updated_at or task.created_at),
                    _tail(number, dialect) == task.phone[-MATCH_DIGITS:],
                )
                .order_by(c.ended_at, c.id)
                .limit(1)
            ).first()
            if closer is None:
                continue
            ended = _aware(closer.ended_at)
            assert ended is not None
            facts = CallFacts(_aware(closer.started_at) or ended, ended, float(closer.talk_seconds or 0))
            if not closes(TaskFacts(MISSED, max(created, last_miss), created), facts, 0.0):
                continue
            bind.execute(
                sa.update(_tasks)
                .where(t.id == task.id)
                .values(status="closed", done_at=ended, updated_at=ended, closed_by_call_id=closer.id)
            )
        last = tasks[-1].id
