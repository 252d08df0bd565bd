"""amoCRM as an outbox sink: each ended call is one ``POST /api/v4/calls`` (the call lands on the contact with
that number), or, when no contact has it, one incoming-call entry in Unsorted (``/api/v4/leads/unsorted/sip``);
ringing phones get amoCRM's incoming-call notice (``POST /api/v2/events``, ``phone_call``) on the users' screens.

``uniq`` is the PBX's Linkedid. amoCRM has no "call by uniq", and it does not refuse a second call with the same
one, so when an earlier attempt's outcome is unknown (a node died between amoCRM's answer and the outbox's record,
or no answer came) the call is looked for first: a posted call is a ``call_in``/``call_out`` note whose ``params``
carry the uniq, on the contact, lead or company it went to; a call no contact had is in Unsorted with it in its
metadata. Found: the delivery is recorded as done, not posted again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import structlog

from crmtel.amocrm.client import AmoClient, AmoError
from crmtel.config import AmoCrmSettings
from crmtel.connectors.models import Attempt, Kind, OutboxEvent, Verdict

NAME = "amocrm"
# call_status: 4 conversation took place, 6 did not get through, 7 number busy.
ANSWERED, NOT_REACHED, BUSY = 4, 6, 7
# The notes and unsorted lists answer at most 250 a page; more pages than this and the look-up gives up (posts).
PAGE, PAGES = 250, 4
# A call's note is made when it is posted, after the call started; a little slack for clocks apart.
_SLACK_SECONDS = 300
NOTED_ON = ("contacts", "leads", "companies")

_log = structlog.get_logger(__name__)


# How an attempt's answer starts when amoCRM refused the post itself (401, 429, another 4xx): nothing was
# created. A lookup that failed is worded apart (``_LOOKUP``), so the next attempt looks again.
_REFUSED = "HTTP 4"
_LOOKUP = "lookup "


def must_look(event: OutboxEvent) -> bool:
    """Whether amoCRM may already have this event's call: an earlier claim lapsed, or an earlier attempt ended
    without amoCRM's answer (a timeout, a dropped connection, a 5xx) or in a lookup that failed. An attempt
    amoCRM refused (4xx: 429, an expired token) created nothing, so the retry posts at once — after a burst
    of 429s, lookups would only add requests to a limit already overrun."""
    if event.lapsed:
        return True
    if event.attempts == 0:
        return False
    return not (event.last_error or "").startswith(_REFUSED)


def _items(answer: Any, key: str) -> Iterator[Mapping[str, Any]]:
    embedded = answer.get("_embedded") if isinstance(answer, dict) else None
    items = embedded.get(key) if isinstance(embedded, dict) else None
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            yield item


def noted(answer: Any, uniq: str) -> Mapping[str, Any] | None:
    """The call note of a notes page whose ``params.uniq`` is ``uniq``."""
    for note in _items(answer, "notes"):
        params = note.get("params")
        if isinstance(params, dict) and str(params.get("uniq") or "") == uniq:
            return note
    return None


def unsorted_with(answer: Any, uniq: str) -> Mapping[str, Any] | None:
    """The Unsorted entry of a page whose call metadata (or source_uid) is ``uniq``."""
    for item in _items(answer, "unsorted"):
        meta = item.get("metadata")
        if item.get("source_uid") == uniq or (isinstance(meta, dict) and meta.get("uniq") == uniq):
            return item
    return None


def _last_page(answer: Any, count: int) -> bool:
    links = answer.get("_links") if isinstance(answer, dict) else None
    return count < PAGE or not (isinstance(links, dict) and "next" in links)


def call_status(ended: Mapping[str, Any]) -> int:
    """amoCRM's call_status for an ended call."""
    if ended.get("outcome") == "answered":
        return ANSWERED
    return BUSY if ended.get("missed_reason") == "BUSY" else NOT_REACHED


def phone(payload: Mapping[str, Any]) -> str | None:
    """The outside party's number."""
    raw = payload.get("caller_number") if payload.get("direction") == "inbound" else payload.get("dialled")
    digits = "".join(ch for ch in str(raw or "") if ch.isdigit())
    return f"+{digits}" if digits else None


def _retry_or_fail(err: AmoError) -> Attempt:
    answer = f"HTTP {err.status or '-'}: {err.detail}"
    if err.status is None or err.status in (401, 429) or err.status >= 500:
        return Attempt(
            Verdict.RETRY,
            answer,
            err.status,
            retry_after=err.retry_after or (1.0 if err.status == 429 else None),
        )
    return Attempt(Verdict.FAILED, answer, err.status)


class AmoCrmSink:
    """Delivers ended calls (and ringing notices) into amoCRM."""

    def __init__(self, settings: AmoCrmSettings, client: AmoClient) -> None:
        self.settings = settings
        self.client = client

    @property
    def name(self) -> str:
        """The outbox name."""
        return NAME

    @property
    def kinds(self) -> frozenset[Kind]:
        """Ringing (the notice) and the end (the call)."""
        return frozenset({Kind.RINGING, Kind.ENDED})

    @property
    def rate_per_second(self) -> float:
        """amoCRM's 7 requests a second, less the headroom the settings keep (6 by default)."""
        return self.settings.rate_per_second

    @property
    def rate_burst(self) -> int:
        """None beyond the rate: amoCRM counts every second."""
        return 1

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    def _user(self, extension: Any) -> int | None:
        return self.settings.users.get(str(extension or ""))

    async def deliver(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        """One effect; amoCRM's trouble becomes RETRY (no answer, 401, 429, 5xx) or FAILED (other 4xx)."""
        payload = event.payload
        number = phone(payload)
        if payload.get("direction") not in ("inbound", "outbound") or number is None:
            return Attempt(Verdict.DELIVERED, "internal or anonymous: not an amoCRM call")
        try:
            if event.kind is Kind.RINGING:
                return await self._ringing(payload, number)
            if event.kind is Kind.ENDED:
                return await self._ended(event, payload, number)
        except AmoError as err:
            return _retry_or_fail(err)
        return Attempt(Verdict.DELIVERED, f"not for amoCRM: {event.kind.value}")

    async def _ringing(self, payload: Mapping[str, Any], number: str) -> Attempt:
        user = self._user(payload.get("extension"))
        if payload.get("direction") != "inbound" or user is None:
            return Attempt(Verdict.DELIVERED, "no amoCRM user to show the call to")
        await self.client.request(
            "POST",
            "/api/v2/events",
            {"add": [{"type": "phone_call", "phone_number": number, "users": [user]}]},
        )
        return Attempt(Verdict.DELIVERED, f"incoming call shown to {user}", 200)

    async def _ended(self, event: OutboxEvent, payload: Mapping[str, Any], number: str) -> Attempt:
        who = payload.get("answered_by") or next(iter(payload.get("rang") or []), None)
        started = datetime.fromisoformat(str(payload["started_at"]))
        call: dict[str, Any] = {
            "direction": payload["direction"],
            "uniq": f"{event.pbx}:{event.linkedid}",
            "duration": max(0, round(float(payload.get("talk_seconds") or 0))),
            "source": self.settings.source,
            "phone": number,
            "call_status": call_status(payload),
            "created_at": int(started.timestamp()),
            # amoCRM answers per item under the request_id it was sent with (its errors too).
            "request_id": "0",
        }
        user = self._user(who)
        if user is not None:
            call["responsible_user_id"] = user
        if payload.get("recording_url"):
            call["link"] = payload["recording_url"]
        if must_look(event):
            try:
                where = await self._already(call["uniq"], call["created_at"])
            except AmoError as err:
                failed = _retry_or_fail(err)
                return Attempt(failed.verdict, _LOOKUP + failed.answer, failed.status, failed.retry_after)
            if where is not None:
                _log.info("amocrm.already_in_amocrm", uniq=call["uniq"], where=where)
                return Attempt(Verdict.DELIVERED, f"already in amoCRM: {where}", 200)
        answer = await self.client.request("POST", "/api/v4/calls", [call])
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if not errors:
            return Attempt(Verdict.DELIVERED, f"call logged: {str(answer)[:300]}", 200)
        if not all(int(e.get("status") or 0) == 404 for e in errors if isinstance(e, dict)):
            return Attempt(Verdict.FAILED, f"calls refused: {str(errors)[:500]}", 400)
        # No contact has this number: an incoming call in Unsorted (the team makes the contact from it).
        unsorted = {
            "request_id": "0",
            "source_uid": call["uniq"],
            "source_name": self.settings.source,
            "created_at": call["created_at"],
            "metadata": {
                "is_call_event_needed": True,
                "uniq": call["uniq"],
                "duration": call["duration"],
                "service_code": self.settings.source,
                "link": call.get("link", ""),
                "phone": number,
                "called_at": call["created_at"],
                "from": str(who or ""),
            },
            "_embedded": {
                "contacts": [
                    {
                        "name": str(payload.get("caller_name") or number),
                        "custom_fields_values": [{"field_code": "PHONE", "values": [{"value": number}]}],
                    }
                ]
            },
        }
        created = await self.client.request("POST", "/api/v4/leads/unsorted/sip", [unsorted])
        return Attempt(Verdict.DELIVERED, f"no contact: unsorted {str(created)[:300]}", 200)

    async def _already(self, uniq: str, started: int) -> str | None:
        """Where amoCRM keeps the call ``uniq`` (None: not found); every page is a request under the rate limit."""
        since = str(started - _SLACK_SECONDS)
        for entity in NOTED_ON:
            for page in range(1, PAGES + 1):
                answer = await self.client.request(
                    "GET",
                    f"/api/v4/{entity}/notes",
                    params=[
                        ("filter[note_type][]", "call_in"),
                        ("filter[note_type][]", "call_out"),
                        ("filter[updated_at][from]", since),
                        ("page", str(page)),
                        ("limit", str(PAGE)),
                    ],
                )
                note = noted(answer, uniq)
                if note is not None:
                    return f"{entity} note {note.get('id')} on {note.get('entity_id')}"
                if _last_page(answer, sum(1 for _ in _items(answer, "notes"))):
                    break
        for page in range(1, PAGES + 1):
            answer = await self.client.request(
                "GET",
                "/api/v4/leads/unsorted",
                params=[
                    ("filter[category][]", "sip"),
                    ("order[created_at]", "desc"),
                    ("page", str(page)),
                    ("limit", str(PAGE)),
                ],
            )
            item = unsorted_with(answer, uniq)
            if item is not None:
                return f"unsorted {item.get('uid')}"
            entries = list(_items(answer, "unsorted"))
            # Newest first: a page that reaches before the call has nothing later to show.
            if _last_page(answer, len(entries)) or any(
                int(e.get("created_at") or 0) < int(since) for e in entries
            ):
                break
        return None
