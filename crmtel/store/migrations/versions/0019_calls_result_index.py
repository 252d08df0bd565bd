"""the report's picked results read from a partial index (calls with a result only)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 16:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built over the rows already stored: only those with a result enter it.
    op.create_index(
        "ix_calls_result_started",
        "calls",
        ["started_at", "result_by", "manager_id", "result"],
        unique=False,
        postgresql_where=sa.text("result IS NOT NULL"),
        sqlite_where=sa.text("result IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_calls_result_started", table_name="calls")
