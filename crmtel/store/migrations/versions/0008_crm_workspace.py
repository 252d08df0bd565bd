"""crm: the team's CRM — search terms and folded names of clients and leads, client e-mail/INN/tags, phone
kinds, party notes, shares, the audit log, deal next step and lost reason, task source; the calls of a party

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-06 09:30:00

The data step fills ``name_key`` and ``party_terms`` for every client and lead already stored (in batches,
with the same functions the application uses), and marks existing callback tasks as opened by a missed
call (``missed_count`` > 0) or planned by a person.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000


def _term_type() -> sa.types.TypeEngine[str]:
    return sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("name_key", sa.String(length=300), nullable=False, server_default=""))
        batch.add_column(sa.Column("email", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("inn", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("name_key", sa.String(length=300), nullable=False, server_default=""))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("phones") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), nullable=True))
    with op.batch_alter_table("deals") as batch:
        batch.add_column(sa.Column("next_step", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("next_step_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lost_reason", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("source", sa.String(length=10), nullable=False, server_default="missed"))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))

    op.create_table(
        "party_terms",
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("party_id", sa.Integer(), nullable=False),
        sa.Column("term", _term_type(), nullable=False),
        sa.Column("name_key", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("kind", "party_id", "term", name=op.f("pk_party_terms")),
    )
    op.create_table(
        "party_shares",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("party_id", sa.Integer(), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_party_shares_manager_id_managers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "party_id", "manager_id", name=op.f("pk_party_shares")),
    )
    op.create_index(op.f("ix_party_shares_manager_id"), "party_shares", ["manager_id"])
    op.create_table(
        "party_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("party_id", sa.Integer(), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_party_notes_manager_id_managers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_party_notes")),
    )
    op.create_index("ix_party_notes_party", "party_notes", ["kind", "party_id", "created_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_audit_log_manager_id_managers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_entity", "audit_log", ["entity", "entity_id", "at"])

    _fill()

    op.create_index("ix_party_terms_term", "party_terms", ["kind", "term", "name_key", "party_id"])
    op.create_index("ix_clients_name_key", "clients", ["name_key", "id"])
    op.create_index("ix_clients_manager_name_key", "clients", ["manager_id", "name_key", "id"])
    op.create_index("ix_clients_created", "clients", ["created_at", "id"])
    op.create_index("ix_leads_name_key", "leads", ["name_key", "id"])
    op.create_index("ix_leads_manager_name_key", "leads", ["manager_id", "name_key", "id"])
    op.create_index("ix_deals_lead", "deals", ["lead_id", "status"])
    op.create_index("ix_deals_manager", "deals", ["manager_id", "status", "opened_at"])
    op.create_index("ix_calls_party", "calls", ["party_kind", "party_id", "started_at"])
    op.create_index("ix_tasks_manager_due", "tasks", ["manager_id", "status", "due_at"])
    op.create_index("ix_tasks_due", "tasks", ["status", "due_at"])
    op.create_index("ix_tasks_client", "tasks", ["client_id"])
    op.create_index("ix_tasks_lead", "tasks", ["lead_id"])


def _fill() -> None:
    # The application's own functions, so a migrated database is indexed exactly as new rows are.
    from crmtel.store.crm_terms import reindex_sync

    bind = op.get_bind()
    bind.execute(sa.text("UPDATE tasks SET source = 'planned' WHERE missed_count = 0"))
    for kind, table in (("c", "clients"), ("l", "leads")):
        last = 0
        while True:
            ids = [
                row[0]
                for row in bind.execute(
                    sa.text(f"SELECT id FROM {table} WHERE id > :last ORDER BY id LIMIT {BATCH}"),
                    {"last": last},
                )
            ]
            if not ids:
                break
            reindex_sync(bind, kind, ids, created=False)  # party_terms.created_at comes in 0021
            last = ids[-1]


def downgrade() -> None:
    for name, table in (
        ("ix_tasks_lead", "tasks"),
        ("ix_tasks_client", "tasks"),
        ("ix_tasks_due", "tasks"),
        ("ix_tasks_manager_due", "tasks"),
        ("ix_calls_party", "calls"),
        ("ix_deals_manager", "deals"),
        ("ix_deals_lead", "deals"),
        ("ix_leads_manager_name_key", "leads"),
        ("ix_leads_name_key", "leads"),
        ("ix_clients_created", "clients"),
        ("ix_clients_manager_name_key", "clients"),
        ("ix_clients_name_key", "clients"),
    ):
        op.drop_index(name, table_name=table)
    op.drop_table("audit_log")
    op.drop_table("party_notes")
    op.drop_table("party_shares")
    op.drop_table("party_terms")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("note")
        batch.drop_column("source")
    with op.batch_alter_table("deals") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("lost_reason")
        batch.drop_column("next_step_at")
        batch.drop_column("next_step")
    with op.batch_alter_table("phones") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("name_key")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("tags")
        batch.drop_column("inn")
        batch.drop_column("email")
        batch.drop_column("name_key")
