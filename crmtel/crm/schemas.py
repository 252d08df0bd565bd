"""The JSON API of clients and leads: every request and response as an explicit pydantic model (so the API
can be described, e.g. as OpenAPI, from these classes)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from crmtel.crm.models import AuditEntry, ContactView, Cursor, PartyCard, PartyListItem, PhoneView
from crmtel.crm.search import visible
from crmtel.crm.service import PHONE_KINDS
from crmtel.push.amounts import AmountText
from crmtel.push.inputs import MAX_ID, Body, LongText, Query, ShortText
from crmtel.timestamps import iso_instant

Login = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _shows_something(text: str) -> str:
    # A pasted name of zero-width spaces, soft hyphens or a BOM alone would be a blank row no search finds.
    if not visible(text).strip():
        raise ValueError("a name needs a visible character")
    return text


Name = Annotated[ShortText, Field(min_length=1), AfterValidator(_shows_something)]
PhoneKindText = Literal["mobile", "work", "home", "fax", "other"]
assert set(PHONE_KINDS) == {"mobile", "work", "home", "fax", "other"}


def _none_if_blank(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class Out(BaseModel):
    """Base of response models: what the API sends, field by field."""

    model_config = ConfigDict(frozen=True)


def encode_cursor(parts: list[object]) -> str:
    """An opaque page cursor (URL-safe)."""
    return base64.urlsafe_b64encode(json.dumps(parts, ensure_ascii=False).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> list[object] | None:
    """The parts of a cursor, or None when it is not one of ours."""
    try:
        padded = text + "=" * (-len(text) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, list) else None


# ---- requests ----------------------------------------------------------------------------------------------


class PartyListQuery(Query):
    """``GET /api/clients`` and ``/api/leads``: search text, filters, sort, page."""

    q: Annotated[str, StringConstraints(max_length=200)] = ""
    manager: Login | None = Field(default=None, description="a login, 'me' or 'none' (unassigned)")
    open_deals: Literal["yes", "no"] | None = None
    silent_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    status: Literal["new", "in_work", "converted", "refused"] | None = None
    sort: Literal["name", "-name", "-created"] = "name"
    cursor: Annotated[str, StringConstraints(max_length=1000)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class PhoneIn(Body):
    """A number as typed, and its kind."""

    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    kind: PhoneKindText | None = None


class ContactIn(Body):
    """A contact person of a client (``id`` of an existing one, or none for a new one)."""

    id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    name: Name
    position: ShortText | None = None
    email: Annotated[ShortText | None, BeforeValidator(_none_if_blank)] = None
    phones: Annotated[list[PhoneIn], Field(max_length=10, default_factory=list)]


class PartyEdit(Body):
    """``PATCH /api/clients/{id}`` / ``/api/leads/{id}``: the fields to change ("" clears a text field)."""

    version: AwareDatetime | None = Field(default=None, description="the updated_at the editor loaded")
    name: Name | None = None
    company: ShortText | None = None
    person: bool | None = None
    category: Literal["retail", "wholesale", ""] | None = None
    email: ShortText | None = None
    inn: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    tags: Annotated[list[Annotated[str, StringConstraints(max_length=50)]], Field(max_length=20)] | None = (
        None
    )
    comment: LongText | None = None
    turnover: AmountText | None = None
    stop_list: bool | None = None
    status: Literal["new", "in_work", "refused"] | None = None
    refusal_reason: ShortText | None = None
    manager: Login | None = Field(default=None, description="a login, or 'none' to unassign")
    phones: Annotated[list[PhoneIn], Field(max_length=20)] | None = None
    contacts: Annotated[list[ContactIn], Field(max_length=50)] | None = None


class PartyCreate(Body):
    """``POST /api/clients`` / ``/api/leads``: a new record."""

    name: Name
    company: ShortText | None = None
    person: bool = False
    email: ShortText | None = None
    inn: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    comment: LongText | None = None
    manager: Login | None = None
    phones: Annotated[list[PhoneIn], Field(max_length=20, default_factory=list)]


class NoteIn(Body):
    """A note on a client or lead."""

    text: Annotated[LongText, Field(min_length=1)]


class SharesIn(Body):
    """Who else may see and edit the record (logins)."""

    managers: Annotated[list[Login], Field(max_length=100)]


class ConvertIn(Body):
    """Converting a lead: the client's name (default: the lead's company, else its name)."""

    name: ShortText | None = None


class MergeIn(Body):
    """Merging another record into this one."""

    kind: Literal["client", "lead"]
    id: Annotated[int, Field(ge=1, le=MAX_ID)]


class TimelineQuery(Query):
    """``GET …/timeline``: a page of the timeline."""

    cursor: Annotated[str, StringConstraints(max_length=1000)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


# ---- responses ---------------------------------------------------------------------------------------------


class PhoneOut(Out):
    """A number: E.164, how it is written for people, its kind."""

    id: int
    e164: str
    display: str
    kind: str | None


class ContactOut(Out):
    """A contact person."""

    id: int
    name: str
    position: str | None
    email: str | None
    phones: list[PhoneOut]


class PartyRow(Out):
    """A row of the client or lead list."""

    kind: str
    id: int
    name: str
    company: str | None
    category: str | None
    status: str | None
    manager_id: int | None
    manager_name: str | None
    phones: list[PhoneOut]
    open_deals: int
    last_call_at: str | None
    created_at: str
    turnover: str | None


class PartyListOut(Out):
    """A page of the list; ``next`` is the cursor of the following page (null: the last)."""

    items: list[PartyRow]
    next: str | None


class AuditOut(Out):
    """One change of the record."""

    id: int
    at: str
    manager_id: int | None
    manager_name: str | None
    action: str
    changes: dict[str, object]


class PartyOut(Out):
    """A client's or lead's card."""

    kind: str
    id: int
    name: str
    company: str | None
    person: bool
    category: str | None
    email: str | None
    inn: str | None
    tags: list[str]
    comment: str | None
    turnover: str | None
    turnover_month: str | None
    stop_list: bool
    status: str | None
    source: str | None
    refusal_reason: str | None
    manager_id: int | None
    manager_name: str | None
    client_id: int | None
    created_at: str
    updated_at: str | None
    version: str | None
    phones: list[PhoneOut]
    contacts: list[ContactOut]
    shared_with: list[int]
    audit: list[AuditOut]
    can_assign: bool


class DuplicateOut(Out):
    """Another record that has one of the numbers too."""

    kind: str
    id: int
    name: str


class EditOut(Out):
    """The card after an edit, the fields that changed, and numbers another record has too."""

    card: PartyOut
    changed: list[str]
    duplicates: list[DuplicateOut]


class IdOut(Out):
    """The id of what was created."""

    id: int


class MergeOut(Out):
    """How many of each moved to the record kept."""

    moved: dict[str, int]


def phone_out(view: PhoneView, display: str) -> PhoneOut:
    """A number for the API."""
    return PhoneOut(id=view.id, e164=view.e164, display=display, kind=view.kind)


def row_out(item: PartyListItem, display: dict[str, str]) -> PartyRow:
    """A list row for the API (``display``: E.164 → how it is written)."""
    return PartyRow(
        kind=item.kind.value,
        id=item.id,
        name=item.name,
        company=item.company,
        category=item.category,
        status=item.status,
        manager_id=item.manager_id,
        manager_name=item.manager_name,
        phones=[PhoneOut(id=0, e164=p, display=display.get(p, p), kind=None) for p in item.phones],
        open_deals=item.open_deals,
        last_call_at=iso_instant(item.last_call_at),
        created_at=iso_instant(item.created_at) or "",
        turnover=f"{item.turnover:.2f}" if item.turnover is not None else None,
    )


def _audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=iso_instant(entry.at) or "",
        manager_id=entry.manager_id,
        manager_name=entry.manager_name,
        action=entry.action,
        changes=entry.changes,
    )


def _contact_out(contact: ContactView, fmt: dict[str, str]) -> ContactOut:
    return ContactOut(
        id=contact.id,
        name=contact.name,
        position=contact.position,
        email=contact.email,
        phones=[phone_out(p, fmt.get(p.e164, p.e164)) for p in contact.phones],
    )


def card_out(card: PartyCard, fmt: dict[str, str], *, can_assign: bool) -> PartyOut:
    """A card for the API (``fmt``: E.164 → how it is written)."""
    version = card.updated_at or card.created_at
    return PartyOut(
        kind=card.kind.value,
        id=card.id,
        name=card.name,
        company=card.company,
        person=card.person,
        category=card.category,
        email=card.email,
        inn=card.inn,
        tags=list(card.tags),
        comment=card.comment,
        turnover=f"{card.turnover:.2f}" if card.turnover is not None else None,
        turnover_month=card.turnover_month,
        stop_list=card.stop_list,
        status=card.status,
        source=card.source,
        refusal_reason=card.refusal_reason,
        manager_id=card.manager_id,
        manager_name=card.manager_name,
        client_id=card.client_id,
        created_at=iso_instant(card.created_at) or "",
        updated_at=iso_instant(card.updated_at),
        version=version.isoformat() if isinstance(version, datetime) else None,
        phones=[phone_out(p, fmt.get(p.e164, p.e164)) for p in card.phones],
        contacts=[_contact_out(c, fmt) for c in card.contacts],
        shared_with=list(card.shared_with),
        audit=[_audit_out(a) for a in card.audit],
        can_assign=can_assign,
    )


def cursor_id(value: object) -> int:
    """The row id of a cursor (ValueError: not one — a forged id beyond what a row id can be would reach the
    database, which cannot bind it: PostgreSQL refuses a number past int64, a store error, not a 400)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise ValueError("cursor")
    return value


def time_cursor(text: str | None) -> tuple[datetime, int] | None:
    """A (time, id) cursor from the query string (None: the first page; ValueError: not a cursor)."""
    if not text:
        return None
    parts = decode_cursor(text)
    if parts is None or len(parts) != 2 or not isinstance(parts[0], str) or not isinstance(parts[1], int):
        raise ValueError("cursor")
    at = datetime.fromisoformat(parts[0])
    if at.tzinfo is None:
        raise ValueError("cursor")
    return at, cursor_id(parts[1])


def cursor_of(query: str | None) -> Cursor | None:
    """A list cursor from the query string (None: the first page; ValueError: not a cursor)."""
    if not query:
        return None
    parts = decode_cursor(query)
    if (
        parts is None
        or len(parts) not in (2, 3)
        or not isinstance(parts[0], str)
        or not isinstance(parts[1], int)
    ):
        raise ValueError("cursor")
    term = parts[2] if len(parts) == 3 else None
    if term is not None and not isinstance(term, str):
        raise ValueError("cursor")
    # Never a NUL: PostgreSQL refuses it in a parameter (a forged cursor was a 503 «database unavailable»).
    if "\x00" in parts[0] or (term is not None and "\x00" in term):
        raise ValueError("cursor")
    return Cursor(parts[0], cursor_id(parts[1]), term)


class ManagerOut(Out):
    """A manager as lists and pickers show them."""

    id: int
    login: str
    name: str
    role: str
    extensions: list[str]


class ManagersOut(Out):
    """The active managers, by name."""

    managers: list[ManagerOut]


class CrmSettingsOut(Out):
    """What the pages offer: deal stages in order, reasons a deal is lost, kinds of numbers and tasks."""

    stages: list[str]
    lost_reasons: list[str]
    phone_kinds: list[str]
    task_kinds: list[str]
    region: str
