"""Pure: how a crmtel call reads in Bitrix24's telephony (call type, result code, duration, the user)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# telephony.externalCall.register TYPE.
OUTGOING, INCOMING = 1, 2


def call_type(direction: str) -> int | None:
    """TYPE for a call's direction; None for internal calls (Bitrix24 has no such telephony call)."""
    return {"inbound": INCOMING, "outbound": OUTGOING}.get(direction)


def status_code(ended: Mapping[str, Any]) -> str:
    """finish's STATUS_CODE: 200 answered, 486 busy, 304 missed otherwise (no answer, hung up, abandoned)."""
    if ended.get("outcome") == "answered":
        return "200"
    if ended.get("missed_reason") == "BUSY":
        return "486"
    return "304"


def duration(ended: Mapping[str, Any]) -> int:
    """finish's DURATION: the conversation in whole seconds (0 for an unanswered call)."""
    talk = ended.get("talk_seconds") or 0.0
    return max(0, round(float(talk)))


def client_number(payload: Mapping[str, Any]) -> str | None:
    """The outside party's number (digits, as Bitrix24 stores them): the caller inbound, the dialled outbound."""
    raw = payload.get("caller_number") if payload.get("direction") == "inbound" else payload.get("dialled")
    if not raw:
        return None
    digits = "".join(ch for ch in str(raw) if ch.isdigit())
    return digits or None


def line_number(payload: Mapping[str, Any]) -> str | None:
    """LINE_NUMBER: the company's number the client called (inbound), else none."""
    if payload.get("direction") != "inbound":
        return None
    raw = payload.get("dialled")
    return "".join(ch for ch in str(raw) if ch.isdigit()) or None if raw else None


def who_finishes(ended: Mapping[str, Any]) -> str | None:
    """The extension the call is finished by: who answered, else the first phone that rang."""
    answered = ended.get("answered_by")
    if answered:
        return str(answered)
    rang = ended.get("rang") or []
    return str(rang[0]) if rang else None
