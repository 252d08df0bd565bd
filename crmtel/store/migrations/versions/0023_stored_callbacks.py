"""calls.number_key and calls.callback_at: each missed inbound call's first callback, stored with the call

The calls-vs-deals report read a month's callbacks by matching its missed calls against its answered ones (0.55 s of
0.9 s on 10M calls, PostgreSQL); now every write keeps them (crmtel.store.call_callbacks) and the report reads
them. Filled here for the rows already stored, with the default ``callback_match_digits`` (10): a daemon configured
otherwise recomputes them at start-up.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crmtel.store.call_callbacks import recompute_statements

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEFAULT_DIGITS = 10


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("callback_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "callback_digits",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_callback_digits"),
    )
    bind = op.get_bind()
    # The keys first, then the index the callbacks are looked up by, then the callbacks.
    key_stmt, callback_stmt, *digits_stmts = recompute_statements(bind.dialect.name, _DEFAULT_DIGITS)
    bind.execute(key_stmt)
    op.create_index(
        "ix_calls_number_key",
        "calls",
        ["number_key", "outcome", "started_at"],
        unique=False,
        postgresql_where=sa.text("number_key IS NOT NULL"),
        sqlite_where=sa.text("number_key IS NOT NULL"),
    )
    bind.execute(callback_stmt)
    for stmt in digits_stmts:
        bind.execute(stmt)
    op.create_index(
        "ix_calls_missed_callback",
        "calls",
        ["started_at", "manager_id", "answered_by", "callback_at"],
        unique=False,
        postgresql_where=sa.text("direction = 'inbound' AND outcome = 'missed'"),
        sqlite_where=sa.text("direction = 'inbound' AND outcome = 'missed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_calls_missed_callback", table_name="calls")
    op.drop_index("ix_calls_number_key", table_name="calls")
    op.drop_table("callback_digits")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("callback_at")
        batch_op.drop_column("number_key")
