"""Domain objects of the CRM workspace: who is asking, what a list asks for, and what the store returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from crmtel.crm.search import Token


class Kind(enum.StrEnum):
    """A client or a lead (the two kinds of party the CRM keeps)."""

    CLIENT = "client"
    LEAD = "lead"

    @property
    def code(self) -> str:
        """The one-letter kind of ``party_terms``."""
        return "c" if self is Kind.CLIENT else "l"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: a manager sees their own, shared and unassigned records; a head sees everything."""

    manager_id: int
    head: bool
    extensions: frozenset[str] = frozenset()


class Sort(enum.StrEnum):
    """Orders of the client and lead lists (each backed by an index, paged by a keyset cursor)."""

    NAME = "name"
    NAME_DESC = "-name"
    CREATED_DESC = "-created"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the last row's sort key and id (and, in a broad search walked in term
    order, the term it was found by)."""

    key: str
    id: int
    term: str | None = None


@dataclass(frozen=True, slots=True)
class PartyQuery:
    """What a client or lead list asks for."""

    kind: Kind
    tokens: tuple[Token, ...] = ()
    manager_id: int | None = None
    unassigned: bool = False
    open_deals: bool | None = None
    silent_days: int | None = None
    lead_status: str | None = None
    sort: Sort = Sort.NAME
    after: Cursor | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class PhoneView:
    """A number of a party (E.164), its kind, and whose it is (the party's own or a contact person's)."""

    id: int
    e164: str
    kind: str | None
    contact_id: int | None = None


@dataclass(frozen=True, slots=True)
class PartyListItem:
    """A row of the client or lead list."""

    kind: Kind
    id: int
    name: str
    company: str | None
    category: str | None
    status: str | None
    manager_id: int | None
    manager_name: str | None
    phones: tuple[str, ...]
    open_deals: int
    last_call_at: datetime | None
    created_at: datetime
    turnover: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PartyPage:
    """One page of a list and the cursor of the next (None: the last page)."""

    items: tuple[PartyListItem, ...]
    next: Cursor | None
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class ContactView:
    """A contact person acting for a client."""

    id: int
    name: str
    position: str | None
    email: str | None
    phones: tuple[PhoneView, ...]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change of a record: who, when, what (``changes``: field -> [old, new])."""

    id: int
    at: datetime
    manager_id: int | None
    manager_name: str | None
    action: str
    changes: dict[str, object]


@dataclass(frozen=True, slots=True)
class PartyCard:
    """Everything the card page shows about a client or lead (the timeline is read separately)."""

    kind: Kind
    id: int
    name: str
    company: str | None
    person: bool
    category: str | None
    email: str | None
    inn: str | None
    tags: tuple[str, ...]
    comment: str | None
    turnover: Decimal | None
    turnover_month: str | None
    stop_list: bool
    status: str | None
    source: str | None
    refusal_reason: str | None
    manager_id: int | None
    manager_name: str | None
    client_id: int | None
    created_at: datetime
    updated_at: datetime | None
    phones: tuple[PhoneView, ...]
    contacts: tuple[ContactView, ...] = ()
    shared_with: tuple[int, ...] = ()
    audit: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class PhoneInput:
    """A number as entered on the card (already E.164) and its kind."""

    e164: str
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class ContactInput:
    """A contact person as entered on the card; ``id`` None creates one."""

    id: int | None
    name: str
    position: str | None = None
    email: str | None = None
    phones: tuple[PhoneInput, ...] = ()


@dataclass(frozen=True, slots=True)
class PartyChanges:
    """Fields a card edit sets (None: left as it is)."""

    name: str | None = None
    company: str | None = None
    person: bool | None = None
    category: str | None = None
    email: str | None = None
    inn: str | None = None
    tags: tuple[str, ...] | None = None
    comment: str | None = None
    turnover: Decimal | None = None
    stop_list: bool | None = None
    status: str | None = None
    refusal_reason: str | None = None
    manager_id: int | None = None
    unassign: bool = False
    phones: tuple[PhoneInput, ...] | None = None
    contacts: tuple[ContactInput, ...] | None = None
    # Cleared fields ("" in the request) are listed here, set to None.
    cleared: frozenset[str] = field(default_factory=frozenset)
