"""the call's result in one click (calls.result, result_by, result_at)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nothing to fill: calls stored before this had no result chosen (null), which is what they show.
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("result_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("result_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_calls_result_by_managers"), "managers", ["result_by"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_calls_result_by_managers"), type_="foreignkey")
        batch_op.drop_column("result_at")
        batch_op.drop_column("result_by")
        batch_op.drop_column("result")
