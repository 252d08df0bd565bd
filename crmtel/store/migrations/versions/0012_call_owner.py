"""calls.answered_on; data: the owner (manager_id) of calls stored before the owner rule

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 13:00:00

- ``calls.answered_on``: the outside number (E.164) a call forwarded (followed) to a manager's mobile was answered
  on. Old rows stay empty: before this revision such a call was stored as missed, and nothing in the row says
  where it went.
- ``calls.manager_id`` was set only from who answered. Every ended call without one gets its owner by the
  rule of ``crmtel.calls.owner`` as far as a row tells it: who answered; for an outbound or internal call who
  placed it (the caller extension); for an inbound call the personal manager of its client or lead, else the
  first manager whose phone rang. Only active managers own calls by the last two rules. The configured queue and
  default owners are not used (a migration has no configuration): such calls stay without an owner, as before.
- A callback task without a manager goes to the owner of the call that opened it ("Перезванивать некому" no more
  for the calls the rule reaches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000

# Lightweight table shapes as of this revision (never the ORM models: they follow the newest schema).
_calls = sa.table(
    "calls",
    sa.column("id", sa.Integer),
    sa.column("direction", sa.String),
    sa.column("caller_number", sa.String),
    sa.column("rang", sa.JSON),
    sa.column("answered_by", sa.String),
    sa.column("ended_at", sa.DateTime(timezone=True)),
    sa.column("party_kind", sa.String),
    sa.column("party_id", sa.Integer),
    sa.column("manager_id", sa.Integer),
)
_managers = sa.table("managers", sa.column("id", sa.Integer), sa.column("active", sa.Boolean))
_extensions = sa.table(
    "manager_extensions", sa.column("manager_id", sa.Integer), sa.column("extension", sa.String)
)
_tasks = sa.table(
    "tasks",
    sa.column("id", sa.Integer),
    sa.column("call_id", sa.Integer),
    sa.column("manager_id", sa.Integer),
)
_clients = sa.table("clients", sa.column("id", sa.Integer), sa.column("manager_id", sa.Integer))
_leads = sa.table("leads", sa.column("id", sa.Integer), sa.column("manager_id", sa.Integer))


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answered_on", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    _owners(bind)
    _task_owners(bind)


def downgrade() -> None:
    # The owners filled in stay (they are what the rule says); only the column goes.
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("answered_on")


def _owner(
    row: Any, by_extension: Mapping[str, int], active: set[int], parties: Mapping[tuple[str, int], int]
) -> int | None:
    if row.answered_by and row.answered_by in by_extension:
        return by_extension[row.answered_by]
    if row.direction in ("outbound", "internal") and row.caller_number in by_extension:
        return by_extension[row.caller_number]
    if row.direction != "inbound":
        return None
    party = (
        parties.get((row.party_kind, row.party_id)) if row.party_kind and row.party_id is not None else None
    )
    if party is not None and party in active:
        return party
    for extension in row.rang or ():
        manager = by_extension.get(str(extension))
        if manager is not None and manager in active:
            return manager
    return None


def _owners(bind: sa.Connection) -> None:
    active = {mid for (mid,) in bind.execute(sa.select(_managers.c.id).where(_managers.c.active.is_(True)))}
    by_extension = {
        ext: mid for mid, ext in bind.execute(sa.select(_extensions.c.manager_id, _extensions.c.extension))
    }
    if not by_extension:
        return
    last = 0
    while True:
        rows = bind.execute(
            sa.select(
                _calls.c.id,
                _calls.c.direction,
                _calls.c.caller_number,
                _calls.c.rang,
                _calls.c.answered_by,
                _calls.c.party_kind,
                _calls.c.party_id,
            )
            .where(_calls.c.id > last, _calls.c.manager_id.is_(None), _calls.c.ended_at.is_not(None))
            .order_by(_calls.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1].id
        parties: dict[tuple[str, int], int] = {}
        for kind, table in (("client", _clients), ("lead", _leads)):
            ids = sorted({r.party_id for r in rows if r.party_kind == kind and r.party_id is not None})
            if ids:
                found = bind.execute(
                    sa.select(table.c.id, table.c.manager_id).where(
                        table.c.id.in_(ids), table.c.manager_id.is_not(None)
                    )
                )
                parties.update({(kind, pid): mid for pid, mid in found})
        for row in rows:
            owner = _owner(row, by_extension, active, parties)
            if owner is not None:
                bind.execute(sa.update(_calls).where(_calls.c.id == row.id).values(manager_id=owner))


def _task_owners(bind: sa.Connection) -> None:
    owner = (
        sa.select(_calls.c.manager_id)
        .where(_calls.c.id == _tasks.c.call_id)
        .correlate(_tasks)
        .scalar_subquery()
    )
    bind.execute(
        sa.update(_tasks)
        .where(_tasks.c.manager_id.is_(None), _tasks.c.call_id.is_not(None))
        .values(manager_id=owner)
    )
