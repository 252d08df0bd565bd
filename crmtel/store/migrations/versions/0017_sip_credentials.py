"""browser-phone SIP credentials of managers (sip_credentials: device, realm, digest hash)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nothing to fill: a manager's credential is drawn by the first endpoint sync after the upgrade.
    op.create_table(
        "sip_credentials",
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("realm", sa.String(length=64), nullable=False),
        sa.Column("ha1", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_sip_credentials_manager_id_managers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("manager_id", name=op.f("pk_sip_credentials")),
        sa.UniqueConstraint("device", name=op.f("uq_sip_credentials_device")),
    )


def downgrade() -> None:
    op.drop_table("sip_credentials")
