"""click-to-call audit log: every attempt, placed or refused, with who made it and how it went

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 13:00:00

A new table only: attempts before this revision were never recorded, so there is nothing to fill.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dial_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("manager_login", sa.String(length=100), nullable=True),
        sa.Column("extension", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("dialled", sa.String(length=64), nullable=True),
        sa.Column("originate_id", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_dial_attempts_manager_id_managers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dial_attempts")),
    )
    op.create_index("ix_dial_attempts_pbx_at", "dial_attempts", ["pbx", "at"])
    op.create_index(op.f("ix_dial_attempts_at"), "dial_attempts", ["at"])
    op.create_index(op.f("ix_dial_attempts_manager_id"), "dial_attempts", ["manager_id"])
    op.create_index(op.f("ix_dial_attempts_originate_id"), "dial_attempts", ["originate_id"])


def downgrade() -> None:
    op.drop_table("dial_attempts")
