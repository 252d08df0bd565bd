"""The JSON answers that handlers build as plain dicts (calls, callbacks, click-to-call, who am I), described as
pydantic models for the OpenAPI document only. The tests validate the handlers' real answers against these, so
a field added to a handler without a line here (or one left here that a handler dropped) fails."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    """A response shape: every field required, nothing else allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorOut(BaseModel):
    """A refusal: the message in the asker's language and a stable catalogue key (``code``, or ``key`` on the
    older routes); a 400 names the fields; 403 for a token's missing scope names it; 429 says when to retry."""

    model_config = ConfigDict(extra="allow")

    error: str
    code: str | None = None
    key: str | None = None


class ManagerJson(Shape):
    """A manager as the page sees them."""

    id: int
    name: str
    login: str
    role: Literal["manager", "head"]
    extensions: list[str]


class MeOut(Shape):
    """``GET /api/me``: who is asking, the page's language, zone and currency; the CSRF token for a browser
    session, the scopes for an API token."""

    id: int
    name: str
    login: str
    role: Literal["manager", "head"]
    extensions: list[str]
    locale: str
    locale_choice: str | None
    languages: list[str]
    timezone: str
    currency: str
    # The person's own mobile (E.164), for "via my mobile" and follow-me; absent for an API token.
    mobile: str | None = None
    csrf_token: str | None = None
    scopes: list[str] | None = None


class OkOut(Shape):
    """Done."""

    ok: bool


class CallJson(Shape):
    """A recorded call (times ISO 8601 UTC with ``Z``; ``recording`` is the path to play it, if any)."""

    manager: str | None
    answered_by_name: str | None
    rang_names: list[str | None]
    id: int
    call_id: str
    direction: Literal["inbound", "outbound", "internal"]
    caller_number: str | None
    caller_name: str | None
    dialled: str | None
    started_at: str | None
    ended_at: str | None
    rang: list[str]
    answered_by: str | None
    answered_on: str | None
    transferred_to: str | None
    queue: str | None
    # None while the call is still going (a ringing or answered call listed before it ends).
    outcome: Literal["answered", "missed"] | None
    missed_reason: str | None
    ring_seconds: float
    talk_seconds: float
    party_kind: Literal["client", "lead"] | None
    party_id: int | None
    party_name: str | None
    result: str | None
    recording: str | None


class CallListOut(Shape):
    """``GET /api/calls``: newest first; page on with ``before`` = the last id."""

    calls: list[CallJson]


class CallNoteJson(Shape):
    """A note on a call."""

    id: int
    manager_id: int | None
    topic: str
    result: str
    comment: str
    created_at: str | None


class CallDealJson(Shape):
    """A deal opened from a call (amount as a decimal string)."""

    id: int
    title: str
    amount: str
    stage: str
    status: Literal["open", "won", "lost"]
    client_id: int | None
    lead_id: int | None


class CallTaskJson(Shape):
    """A callback task planned from a call."""

    id: int
    title: str
    phone: str | None
    due_at: str | None
    status: str


class CallDetailOut(Shape):
    """``GET /api/calls/{call_id}``: the call with its notes, deals and tasks."""

    call: CallJson
    notes: list[CallNoteJson]
    deals: list[CallDealJson]
    tasks: list[CallTaskJson]


class DuplicateJson(Shape):
    """A record that already has the number."""

    kind: Literal["client", "lead"]
    id: int
    name: str


class CallLeadOut(Shape):
    """``POST /api/calls/{call_id}/lead``: the lead (201 new, 200 the one the call already had)."""

    id: int
    created: bool
    duplicates: list[DuplicateJson]


class CallbackTaskJson(Shape):
    """A callback task of missed calls."""

    id: int
    phone: str
    status: str
    missed_count: int
    first_missed_at: str | None
    due_at: str | None
    overdue: bool
    closed_at: str | None
    closed_by_call: str | None
    result: str | None
    title: str | None
    manager: str | None
    manager_name: str | None
    party_kind: Literal["client", "lead"] | None
    party_id: int | None
    party_name: str | None
    last_call: str | None


class CallbackListOut(Shape):
    """``GET /api/callbacks``."""

    tasks: list[CallbackTaskJson]


class SearchHitJson(Shape):
    """A client or lead found by the search box."""

    kind: Literal["client", "lead"]
    id: int
    name: str
    company: str | None
    manager_id: int | None
    phones: list[str]


class SearchOut(Shape):
    """``GET /api/search?q=``."""

    results: list[SearchHitJson]


class CallResultsOut(Shape):
    """``GET /api/call-results``: the result codes one may pick."""

    results: list[str]


class DialOut(Shape):
    """A click-to-call attempt (202 placed, 200 the same click again); ``message`` in the asker's language."""

    type: Literal["dial.result"]
    originate_id: str
    status: str
    ok: bool
    duplicate: bool
    pbx: str
    extension: str
    number: str
    dialled: str
    # "phone": the desk phone rang first; "mobile": the manager's mobile, then 1 pressed.
    via: Literal["phone", "mobile"] = "phone"
    detail: str | None
    message_key: str
    params: dict[str, Any]
    at: str | None
    message: str | None = None


class BrowserDialOut(Shape):
    """``POST /api/dial/browser``: the click checked and audited; the browser phone dials ``exten`` itself."""

    originate_id: str
    exten: str
    number: str
    extension: str
    message: str


class PhoneRegistrationOut(Shape):
    """``GET /api/phone``: what the page's SIP phone registers with (the digest hash, never a password)."""

    ws_url: str
    uri: str
    device: str
    extension: str
    realm: str
    ha1: str
    ice_servers: list[str]
    register_seconds: int


class BoardCallerJson(Shape):
    """A caller waiting in a queue."""

    call_id: str
    number: str | None
    name: str | None
    since: str | None


class BoardQueueJson(Shape):
    """A queue: how many wait, since when the longest, who."""

    queue: str
    waiting: int
    longest_since: str | None
    callers: list[BoardCallerJson]


class BoardTalkJson(Shape):
    """A call in progress."""

    call_id: str
    number: str | None
    name: str | None
    extension: str
    manager: str | None
    queue: str | None
    since: str | None


class BoardTodayJson(Shape):
    """Today's counts so far."""

    answered: int
    missed: int
    called_back: int


class BoardOut(Shape):
    """``GET /api/board`` (heads): queues with their waiting callers, calls in progress, today's counts."""

    type: Literal["board.state"]
    at: str | None
    queues: list[BoardQueueJson]
    talking: list[BoardTalkJson]
    today: BoardTodayJson
