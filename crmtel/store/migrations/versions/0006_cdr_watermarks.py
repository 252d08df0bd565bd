"""per-PBX watermark of the CDR backfill

Revision ID: 0005
Revises: 0007
Create Date: 2026-12-01 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cdr_watermarks",
        sa.Column("pbx", sa.String(length=64), nullable=False),
        sa.Column("processed_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pbx", name=op.f("pk_cdr_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("cdr_watermarks")
