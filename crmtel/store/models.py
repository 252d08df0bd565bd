"""ORM tables of the record store. Nothing outside ``crmtel.store`` sees these classes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC and read back aware (UTC) on every database.

    SQLite keeps a timezone-aware column as text without its offset: ``10:00+03:00`` written as it is would
    read back as 10:00 UTC. Every value is turned into UTC on its way in — rows and the values compared with
    them in queries alike — and a naive one coming back is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware values become UTC; a naive one is taken to be UTC already (as crmtel writes them)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware UTC whatever the driver hands back (SQLite: naive UTC)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (Alembic needs them)."""

    metadata = MetaData(naming_convention=NAMING)


class ManagerRow(Base):
    __tablename__ = "managers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    login: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="manager")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    speciality: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The language the person chose on the page (None: follow the browser).
    locale: Mapped[str | None] = mapped_column(String(16))
    # The manager's mobile in E.164 (None: none); the PBX rings it for "via my mobile" and follow-me.
    mobile: Mapped[str | None] = mapped_column(String(32))


class ExtensionRow(Base):
    __tablename__ = "manager_extensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manager_id: Mapped[int] = mapped_column(ForeignKey("managers.id", ondelete="CASCADE"), index=True)
    extension: Mapped[str] = mapped_column(String(32), unique=True)


class SipCredentialRow(Base):
    """A manager's browser-phone credential: the digest hash Asterisk and the browser both need, never a password.

    The random secret behind ``ha1`` is drawn, hashed (md5 of device:realm:secret, what SIP digest uses) and
    forgotten at once. The row is deleted whenever the manager's sessions are ended (password change,
    deactivation, an extension taken away), and the next endpoint sync draws a new one.
    """

    __tablename__ = "sip_credentials"

    manager_id: Mapped[int] = mapped_column(ForeignKey("managers.id", ondelete="CASCADE"), primary_key=True)
    device: Mapped[str] = mapped_column(String(32), unique=True)
    realm: Mapped[str] = mapped_column(String(64))
    ha1: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ClientRow(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20), default="company")
    category: Mapped[str | None] = mapped_column(String(20))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"), index=True)
    turnover: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    turnover_month: Mapped[date | None] = mapped_column(Date)
    stop_list: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The folded name the list sorts by (crmtel.crm.search.name_key), kept by every writer.
    name_key: Mapped[str] = mapped_column(String(300), default="")
    email: Mapped[str | None] = mapped_column(String(300))
    inn: Mapped[str | None] = mapped_column(String(12))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


Index("ix_clients_name_key", ClientRow.name_key, ClientRow.id)
Index("ix_clients_manager_name_key", ClientRow.manager_id, ClientRow.name_key, ClientRow.id)
Index("ix_clients_created", ClientRow.created_at, ClientRow.id)


class ContactRow(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(300))
    position: Mapped[str | None] = mapped_column(String(200))


class ClientContactRow(Base):
    __tablename__ = "client_contacts"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class LeadRow(Base):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    company: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(50), default="import")
    status: Mapped[str] = mapped_column(String(20), default="new")
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    converted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    name_key: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


Index("ix_leads_name_key", LeadRow.name_key, LeadRow.id)
Index("ix_leads_manager_name_key", LeadRow.manager_id, LeadRow.name_key, LeadRow.id)


class PhoneRow(Base):
    """A number (E.164) belonging to exactly one of: a contact, a client, a lead."""

    __tablename__ = "phones"
    __table_args__ = (
        Index("ix_phones_e164", "e164"),
        UniqueConstraint("e164", "contact_id", "client_id", "lead_id", name="uq_phones_owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    e164: Mapped[str] = mapped_column(String(20))
    raw: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    # mobile | work | home | fax | other (None: not said).
    kind: Mapped[str | None] = mapped_column(String(20))


class DealRow(Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_closed", "status", "closed_at", "manager_id"),
        Index("ix_deals_opened", "opened_at", "manager_id"),
        Index("ix_deals_lead", "lead_id", "status"),
        Index("ix_deals_manager", "manager_id", "status", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300), default="")
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=Decimal(0))
    stage: Mapped[str] = mapped_column(String(50), default="new")
    status: Mapped[str] = mapped_column(String(10), default="open")
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    next_step: Mapped[str | None] = mapped_column(String(300))
    next_step_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lost_reason: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CallRow(Base):
    """One call (all its legs), keyed by ``(pbx, linkedid)``."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("pbx", "linkedid", name="uq_calls_pbx_linkedid"),
        Index("ix_calls_started", "started_at", "manager_id"),
        # Reports: missed and answered calls of a period are exact index-only ranges (callback matching) ...
        Index(
            "ix_calls_report",
            "direction",
            "outcome",
            "started_at",
            "manager_id",
            "answered_by",
            "caller_number",
            "dialled",
        ),
        # ... and per-manager ranges group without a sort (SQLite has no hash GROUP BY).
        Index(
            "ix_calls_manager_started",
            "manager_id",
            "started_at",
            "direction",
            "outcome",
            "talk_seconds",
            "answered_by",
        ),
        Index("ix_calls_caller", "caller_number", "started_at"),
        # The report's picked results: only the calls with one (a few in a million), not a scan of the period.
        Index(
            "ix_calls_result_started",
            "started_at",
            "result_by",
            "manager_id",
            "result",
            postgresql_where=text("result IS NOT NULL"),
            sqlite_where=text("result IS NOT NULL"),
        ),
        # A client's or lead's timeline, and "last call older than N days".
        Index("ix_calls_party", "party_kind", "party_id", "started_at"),
        # Stored callbacks (crmtel.store.call_callbacks): a write finds the calls of its numbers' keys ...
        Index(
            "ix_calls_number_key",
            "number_key",
            "outcome",
            "started_at",
            postgresql_where=text("number_key IS NOT NULL"),
            sqlite_where=text("number_key IS NOT NULL"),
        ),
        # ... and the report reads a period's missed calls with their first callback from this index alone.
        Index(
            "ix_calls_missed_callback",
            "started_at",
            "manager_id",
            "answered_by",
            "callback_at",
            postgresql_where=text("direction = 'inbound' AND outcome = 'missed'"),
            sqlite_where=text("direction = 'inbound' AND outcome = 'missed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pbx: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(10))
    caller_number: Mapped[str | None] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(300))
    dialled: Mapped[str | None] = mapped_column(String(64))
    rang: Mapped[list[str]] = mapped_column(JSON, default=list)
    answered_by: Mapped[str | None] = mapped_column(String(32))
    # The outside number (E.164) a forwarded / follow-me call was answered on (the manager's mobile).
    answered_on: Mapped[str | None] = mapped_column(String(64))
    # The outside number a blind transfer sent the call on to (answered there); the call stays answered_by's.
    transferred_to: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(10))
    missed_reason: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ring_seconds: Mapped[float] = mapped_column(Numeric(10, 2), default=0)
    talk_seconds: Mapped[float] = mapped_column(Numeric(10, 2), default=0)
    recording_file: Mapped[str | None] = mapped_column(String(500))
    recording_url: Mapped[str | None] = mapped_column(String(1000))
    route_kind: Mapped[str | None] = mapped_column(String(20))
    route_target: Mapped[str | None] = mapped_column(String(64))
    route_reason: Mapped[str | None] = mapped_column(String(500))
    party_kind: Mapped[str | None] = mapped_column(String(10))
    party_id: Mapped[int | None] = mapped_column(Integer)
    party_name: Mapped[str | None] = mapped_column(String(300))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    # The click-to-call attempt (CRMTEL_ORIGINATE_ID) this call came from.
    originate_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The number a callback is matched by (its last ``callback_match_digits`` digits), for answered inbound and
    # outbound calls and for missed inbound calls from a dialable number; null for any other call.
    number_key: Mapped[str | None] = mapped_column(String(64))
    # A missed inbound call's first callback: the start of the first answered call with its number key that
    # started after it (null when none yet). Kept by every write of calls (crmtel.store.call_callbacks).
    callback_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The tracker's state of a live call, so a restart (even kill -9) resumes it; null once ended.
    live_state: Mapped[dict[str, object] | None] = mapped_column(JSON)
    # The call's result in one click (a code of ``[results]``; words in the catalogues), who chose it and when.
    result: Mapped[str | None] = mapped_column(String(64))
    result_by: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    result_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CallNoteRow(Base):
    """The result of a call as the manager wrote it."""

    __tablename__ = "call_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    topic: Mapped[str] = mapped_column(String(300), default="")
    result: Mapped[str] = mapped_column(String(300), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TaskRow(Base):
    """A callback task: created for a missed inbound call, or by a manager from a call card."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_open_phone", "phone", "status"),
        Index("ix_tasks_manager_due", "manager_id", "status", "due_at"),
        Index("ix_tasks_due", "status", "due_at"),
        Index("ix_tasks_client", "client_id"),
        Index("ix_tasks_lead", "lead_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="callback")
    phone: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300), default="")
    missed_count: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(10), default="open")
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # How the task was closed: the answered call that closed it, or a manager's result by hand.
    closed_by_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    closed_by_manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    result: Mapped[str | None] = mapped_column(String(300))
    # missed: opened by a missed call; planned: set by a person (a planned callback closes early only after a
    # real conversation, see crmtel.tasks.rules).
    source: Mapped[str] = mapped_column(String(10), default="missed")
    note: Mapped[str | None] = mapped_column(Text)


class WebSessionRow(Base):
    """A login session of the web app; only a hash of the cookie's token is stored."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    manager_id: Mapped[int] = mapped_column(ForeignKey("managers.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class ApiTokenRow(Base):
    """An API token of a manager; only SHA-256 of the token is stored (the secret is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    manager_id: Mapped[int] = mapped_column(ForeignKey("managers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Space-separated scope names (calls:read crm:write …).
    scopes: Mapped[str] = mapped_column(String(500))
    # The prefix and the secret's first characters, so an admin can tell tokens apart.
    hint: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class QueueVisitRow(Base):
    """One wait of an inbound call in a queue (queue reports); written when the call ends."""

    __tablename__ = "call_queue_visits"
    __table_args__ = (
        UniqueConstraint("call_id", "seq", name="uq_call_queue_visits_call_seq"),
        # The queue report reads only this index: a period range, grouped by queue.
        Index(
            "ix_call_queue_visits_report",
            "started_at",
            "queue",
            "outcome",
            "wait_seconds",
            "talk_seconds",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(64))
    # The call's start: a wait belongs to the report day its call started on, like the call itself.
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(String(10))
    wait_seconds: Mapped[float] = mapped_column(Numeric(10, 2), default=0)
    answered_by: Mapped[str | None] = mapped_column(String(32))
    talk_seconds: Mapped[float] = mapped_column(Numeric(10, 2), default=0)


class QueueOfferRow(Base):
    """A queue member's phone rang for a waiting caller (``answered`` when it took the call)."""

    __tablename__ = "call_queue_offers"
    __table_args__ = (
        UniqueConstraint("call_id", "seq", "extension", name="uq_call_queue_offers_call_seq_ext"),
        Index("ix_call_queue_offers_report", "started_at", "queue", "extension", "answered"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(64))
    extension: Mapped[str] = mapped_column(String(32))
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PbxLeaseRow(Base):
    """Which cluster node follows a PBX, and the fencing epoch every call write of that PBX is checked against."""

    __tablename__ = "pbx_leases"

    pbx: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    node: Mapped[str] = mapped_column(String(200), default="")
    since: Mapped[datetime] = mapped_column(UtcDateTime())


class CdrWatermarkRow(Base):
    """How far (in the PBX's time) crmtel has followed each PBX: the CDR backfill starts from here."""

    __tablename__ = "cdr_watermarks"

    pbx: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_until: Mapped[datetime] = mapped_column(UtcDateTime())


class PartyTermRow(Base):
    """One word or digit run a client (``kind`` c) or lead (l) is found by (crmtel.crm.search)."""

    __tablename__ = "party_terms"
    # A broad search walks these indexes in (term, name) or (term, newest first) order instead of the whole
    # list (crmtel.store.crm_lists).
    __table_args__ = (
        Index("ix_party_terms_term", "kind", "term", "name_key", "party_id"),
        Index("ix_party_terms_created", "kind", "term", "created_at", "party_id"),
    )

    kind: Mapped[str] = mapped_column(String(1), primary_key=True)
    party_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    term: Mapped[str] = mapped_column(
        String(64).with_variant(String(64, collation="C"), "postgresql"), primary_key=True
    )
    # The party's sort key (its folded name), so a broad search lists in name order from this table alone.
    name_key: Mapped[str] = mapped_column(String(300), default="")
    # The party's other sort key (when it was created), so a broad search lists newest first from this table.
    # Nullable only because SQLite cannot add a NOT NULL column without a default; every row has it (0021).
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PartyShareRow(Base):
    """A client or lead shared with a manager who is not responsible for it."""

    __tablename__ = "party_shares"

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    party_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manager_id: Mapped[int] = mapped_column(
        ForeignKey("managers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PartyNoteRow(Base):
    """A note on a client or lead (not about one call)."""

    __tablename__ = "party_notes"
    __table_args__ = (Index("ix_party_notes_party", "kind", "party_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    party_id: Mapped[int] = mapped_column(Integer)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditRow(Base):
    """Who changed what on a CRM record, and when (``changes``: field -> [old, new])."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"))
    entity: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))
    changes: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class ConnectorEventRow(Base):
    """One effect a connector must deliver to an outside system (the outbox), written with its call's row."""

    __tablename__ = "connector_events"
    __table_args__ = (
        UniqueConstraint("connector", "key", name="uq_connector_events_key"),
        Index("ix_connector_events_due", "connector", "state", "next_at"),
        Index("ix_connector_events_call", "connector", "pbx", "linkedid", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(32))
    # The idempotency key (per call and event): staging the same event again adds nothing.
    key: Mapped[str] = mapped_column(String(255))
    pbx: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # pending -> delivered, or failed (given up or refused; a replay makes it pending again).
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # A worker's claim (node, until when): another node takes the event over once the claim ran out.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(1000))


class ConnectorDeliveryRow(Base):
    """One attempt to deliver an outbox event, with the outside system's answer (the delivery log)."""

    __tablename__ = "connector_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("connector_events.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempt: Mapped[int] = mapped_column(Integer)
    # delivered, retry or failed.
    outcome: Mapped[str] = mapped_column(String(12))
    status: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text, default="")
    node: Mapped[str] = mapped_column(String(200), default="")


class ConnectorCallRow(Base):
    """What a connector remembers of one call between its events (Bitrix24's CALL_ID, say)."""

    __tablename__ = "connector_calls"

    connector: Mapped[str] = mapped_column(String(32), primary_key=True)
    pbx: Mapped[str] = mapped_column(String(64), primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), primary_key=True)
    memo: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ConnectorTokenRow(Base):
    """A connector's OAuth tokens and application token, sealed (never stored in clear)."""

    __tablename__ = "connector_tokens"

    connector: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DialAttemptRow(Base):
    """One click-to-call attempt, placed or refused: who (manager or the CLI) called what from where, and how
    it went — the audit log against toll fraud."""

    __tablename__ = "dial_attempts"
    __table_args__ = (Index("ix_dial_attempts_pbx_at", "pbx", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    pbx: Mapped[str] = mapped_column(String(64))
    # "web" (the page), "cli" (crmtel call), "guard" (an Originate refused where it is written to the PBX) or
    # "webphone" (a browser phone's outside call refused when the PBX asked over FastAGI).
    source: Mapped[str] = mapped_column(String(8))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"), index=True)
    manager_login: Mapped[str | None] = mapped_column(String(100))
    extension: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(64))
    dialled: Mapped[str | None] = mapped_column(String(64))
    originate_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # "placed" or "refused"; a refusal's catalogue key (dial.number_denied, dial.rate_manager, …).
    decision: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(40))
    # How a placed attempt went (DialStatus), once the PBX said so; the PBX's words for a refusal.
    status: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(200))


class CardEpochRow(Base):
    """One counter (id 1) other crmtel processes (the CLI) move after a committed CRM write: a running daemon
    reads it every second and forgets its ringing cards when it moved (crmtel.store.changes)."""

    __tablename__ = "card_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)


class CallbackDigitsRow(Base):
    """One row (id 1): the ``reports.callback_match_digits`` that ``calls.number_key`` and ``calls.callback_at``
    were computed with. Writers keep them with these digits; the report reads them only when its own digits
    are the same (else it matches the calls itself)."""

    __tablename__ = "callback_digits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    digits: Mapped[int] = mapped_column(Integer)
