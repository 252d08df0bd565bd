"""queue visits and the members offered each waiting caller (queue reports)

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 10:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_queue_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("wait_seconds", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("answered_by", sa.String(length=32), nullable=True),
        sa.Column("talk_seconds", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_queue_visits_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_queue_visits")),
        sa.UniqueConstraint("call_id", "seq", name="uq_call_queue_visits_call_seq"),
    )
    op.create_index(
        "ix_call_queue_visits_report",
        "call_queue_visits",
        ["started_at", "queue", "outcome", "wait_seconds", "talk_seconds"],
        unique=False,
    )
    op.create_table(
        "call_queue_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("extension", sa.String(length=32), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_queue_offers_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_queue_offers")),
        sa.UniqueConstraint("call_id", "seq", "extension", name="uq_call_queue_offers_call_seq_ext"),
    )
    op.create_index(
        "ix_call_queue_offers_report",
        "call_queue_offers",
        ["started_at", "queue", "extension", "answered"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_call_queue_offers_report", table_name="call_queue_offers")
    op.drop_table("call_queue_offers")
    op.drop_index("ix_call_queue_visits_report", table_name="call_queue_visits")
    op.drop_table("call_queue_visits")
