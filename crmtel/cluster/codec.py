"""Live call events as JSON for the fan-out stream, and back: typed on both sides, nothing pickled."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from crmtel.calls.record import from_json, to_json
from crmtel.domain import CallEnded, CallEvent, CallRinging
from crmtel.timestamps import iso_instant

# Tagged by class name; built from the union itself, so a new kind of live event travels without a change here.
_TYPES: dict[str, type[Any]] = {kind.__name__: kind for kind in get_args(CallEvent)}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(kind) for name, kind in _TYPES.items()}


class BadEvent(ValueError):
    """A stream entry that is not a live call event this version understands."""


def pbx_of(event: CallEvent) -> str:
    """The PBX an event belongs to (call ids are ``pbx:linkedid``; linkedids have no colon)."""
    if isinstance(event, CallRinging):
        return event.pbx
    if isinstance(event, CallEnded):
        return event.record.pbx
    return event.call_id.rpartition(":")[0]


def encode(event: CallEvent) -> bytes:
    """``{"type": …, "event": {…}}`` as UTF-8 JSON (times keep their offsets)."""
    name = type(event).__name__
    if isinstance(event, CallEnded):
        # The record travels in the one JSON form of calls/record.py's field table.
        body: Any = {"call_id": event.call_id, "record": to_json(event.record), "at": iso_instant(event.at)}
    else:
        body = _ADAPTERS[name].dump_python(event, mode="json")
    return json.dumps({"type": name, "event": body}, ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes | str) -> CallEvent:
    """The event ``encode`` wrote; anything else is a BadEvent."""
    try:
        wrapper = json.loads(data)
        adapter = _ADAPTERS[wrapper["type"]]
        if wrapper["type"] == "CallEnded":
            body = wrapper["event"]
            at = datetime.fromisoformat(str(body["at"]))
            return CallEnded(str(body["call_id"]), from_json(body["record"]), at)
        event: CallEvent = adapter.validate_python(wrapper["event"])
    except (ValueError, KeyError, TypeError, ValidationError) as err:
        raise BadEvent(f"not a live call event: {err}") from err
    return event
