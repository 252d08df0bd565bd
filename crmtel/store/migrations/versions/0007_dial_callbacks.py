"""click-to-call link on calls; callback tasks close themselves (or by hand) with a result

Revision ID: 0004
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("originate_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_calls_originate_id"), ["originate_id"], unique=False)
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_by_call_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("closed_by_manager_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("result", sa.String(length=300), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tasks_closed_by_call_id_calls"),
            "calls",
            ["closed_by_call_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_tasks_closed_by_manager_id_managers"),
            "managers",
            ["closed_by_manager_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tasks_closed_by_manager_id_managers"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_tasks_closed_by_call_id_calls"), type_="foreignkey")
        batch_op.drop_column("result")
        batch_op.drop_column("closed_by_manager_id")
        batch_op.drop_column("closed_by_call_id")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_originate_id"))
        batch_op.drop_column("originate_id")
