"""connectors: the outbox of effects for outside CRMs, its delivery log, per-call memos and sealed tokens

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 13:00:00

New tables only: nothing existing is changed, so there is nothing to fill (calls stored before this
revision were never meant for a CRM).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connector_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("linkedid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_events")),
        sa.UniqueConstraint("connector", "key", name="uq_connector_events_key"),
    )
    op.create_index("ix_connector_events_due", "connector_events", ["connector", "state", "next_at"])
    op.create_index("ix_connector_events_call", "connector_events", ["connector", "pbx", "linkedid", "id"])
    op.create_table(
        "connector_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["connector_events.id"],
            name=op.f("fk_connector_deliveries_event_id_connector_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_deliveries")),
    )
    op.create_index(
        op.f("ix_connector_deliveries_event_id"), "connector_deliveries", ["event_id"], unique=False
    )
    op.create_table(
        "connector_calls",
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("linkedid", sa.String(length=64), nullable=False),
        sa.Column("memo", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", "pbx", "linkedid", name=op.f("pk_connector_calls")),
    )
    op.create_table(
        "connector_tokens",
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector", name=op.f("pk_connector_tokens")),
    )


def downgrade() -> None:
    op.drop_table("connector_tokens")
    op.drop_table("connector_calls")
    op.drop_index(op.f("ix_connector_deliveries_event_id"), table_name="connector_deliveries")
    op.drop_table("connector_deliveries")
    op.drop_index("ix_connector_events_call", table_name="connector_events")
    op.drop_index("ix_connector_events_due", table_name="connector_events")
    op.drop_table("connector_events")
