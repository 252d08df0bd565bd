"""Pure: which outbox effects a call's live events make, each with its idempotency key and JSON payload.

The key is built from what the PBX said (linkedid, extension, event time), never from crmtel's clock or a
counter, so the same event seen again after a restart (restored live calls, a replayed trace, a cluster
take-over) stages the same key and the outbox keeps one copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from crmtel.connectors.models import Kind, Staged
from crmtel.domain import CallAnswered, CallEnded, CallEvent, CallRecord, CallRinging, CallRingStopped


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _split(call_id: str) -> tuple[str, str]:
    pbx, _, linkedid = call_id.partition(":")
    return pbx, linkedid


def record_payload(record: CallRecord) -> dict[str, Any]:
    """The JSON of an ended call a connector needs (one field table, read back by ``connectors.calls``)."""
    return {
        "direction": record.direction.value,
        "caller_number": record.caller_number,
        "caller_name": record.caller_name,
        "dialled": record.dialled,
        "started_at": _iso(record.started_at),
        "answered_at": _iso(record.answered_at),
        "ended_at": _iso(record.ended_at),
        "answered_by": record.answered_by,
        "rang": list(record.rang),
        "queue": record.queue,
        "outcome": record.outcome.value if record.outcome is not None else None,
        "missed_reason": record.missed_reason.name if record.missed_reason is not None else None,
        "talk_seconds": record.talk_seconds,
        "ring_seconds": record.ring_seconds,
        "recording_file": record.recording_file,
        "recording_url": record.recording_url,
        "party_kind": record.party_kind.value if record.party_kind is not None else None,
        "party_id": record.party_id,
        "party_name": record.party_name,
        "manager_id": record.manager_id,
        "originate_id": record.originate_id,
        "merged_into": record.extra.get("merged_into"),
    }


def stage(event: CallEvent) -> list[Staged]:
    """The outbox effects of one live event (none for events no connector needs)."""
    if isinstance(event, CallRinging):
        return [
            Staged(
                event.pbx,
                event.linkedid,
                Kind.RINGING,
                f"{event.call_id}:ringing:{event.extension}:{event.at.isoformat()}",
                {
                    "extension": event.extension,
                    "direction": event.direction.value,
                    "caller_number": event.caller_number,
                    "caller_name": event.caller_name,
                    "dialled": event.dialled,
                    "queue": event.queue,
                    "originate_id": event.originate_id,
                    "at": event.at.isoformat(),
                },
            )
        ]
    if isinstance(event, CallRingStopped):
        pbx, linkedid = _split(event.call_id)
        return [
            Staged(
                pbx,
                linkedid,
                Kind.RING_STOPPED,
                f"{event.call_id}:ring_stopped:{event.extension}:{event.at.isoformat()}",
                {
                    "extension": event.extension,
                    "reason": event.reason,
                    "answered_by": event.answered_by,
                    "at": event.at.isoformat(),
                },
            )
        ]
    if isinstance(event, CallAnswered):
        pbx, linkedid = _split(event.call_id)
        return [
            Staged(
                pbx,
                linkedid,
                Kind.ANSWERED,
                f"{event.call_id}:answered:{event.extension}",
                {"extension": event.extension, "at": event.at.isoformat()},
            )
        ]
    if isinstance(event, CallEnded):
        record = event.record
        call = f"{record.pbx}:{record.linkedid}"
        out = [Staged(record.pbx, record.linkedid, Kind.ENDED, f"{call}:ended", record_payload(record))]
        if record.recording_file or record.recording_url:
            out.append(
                Staged(
                    record.pbx,
                    record.linkedid,
                    Kind.RECORDING,
                    f"{call}:recording",
                    {"recording_file": record.recording_file, "recording_url": record.recording_url},
                )
            )
        return out
    return []


def stage_all(events: Iterable[CallEvent], kinds: Sequence[Kind] | frozenset[Kind]) -> list[Staged]:
    """Every effect of ``events`` of the wanted ``kinds``, in the order the events happened."""
    wanted = frozenset(kinds)
    return [s for e in events for s in stage(e) if s.kind in wanted]
