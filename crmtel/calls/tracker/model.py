"""The call tracker's state: legs, calls, the per-PBX state, and how a call becomes a ``CallRecord``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from crmtel.calls.legs import LegKind, classify
from crmtel.domain import CallRecord, Direction, MissedReason, Outcome, QueueVisit
from crmtel.phones import PhoneKind, normalize
from crmtel.recordings import DEFAULT_RECORDINGS_DIR, relpath


@dataclass(frozen=True, slots=True)
class Leg:
    """One live channel of a call."""

    uniqueid: str
    name: str
    kind: LegKind
    extension: str | None = None
    up: bool = False
    bridge: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """Everything the tracker knows about one live call (all channels sharing a Linkedid)."""

    linkedid: str
    started_at: datetime
    legs: Mapping[str, Leg] = field(default_factory=dict)
    # Set once the originating channel (Uniqueid == Linkedid) has been seen.
    origin_kind: LegKind | None = None
    direction: Direction | None = None
    caller_raw: str | None = None
    caller_number: str | None = None
    caller_hidden: bool = False
    caller_name: str | None = None
    # The manager's extension that placed the call (its own phone, or the one a Local originate rang first).
    placed_by: str | None = None
    dialled: str | None = None
    dialled_e164: str | None = None
    rang: tuple[str, ...] = ()
    # Phones ringing right now: dest Uniqueid -> extension.
    ringing: Mapping[str, str] = field(default_factory=dict)
    answered_by: str | None = None
    answered_at: datetime | None = None
    queue: str | None = None
    in_queue: bool = False
    unanswered_reason: MissedReason | None = None
    recording_file: str | None = None
    route_kind: str | None = None
    route_target: str | None = None
    route_reason: str | None = None
    transfer_pending: bool = False
    # Where the pending blind transfer sent the call (the BlindTransfer's extension): a trunk leg that answers is a
    # transfer out only when it dialled that number — not a colleague's phone forwarding to their mobile.
    transfer_target: str | None = None
    transferred_from: str | None = None
    # A blind transfer out through the trunk (to a partner, a colleague's mobile): the number that answered there.
    # The call stays the manager's who answered it; this outside number is never an extension.
    transferred_to: str | None = None
    # Forwarding / follow-me: the extension whose phone sent the call on (a ``DialEnd`` with ``Forward``), the
    # number it sent it to, the outside number last dialled for this inbound call, and the one that answered.
    forwarded_by: str | None = None
    forwarded_to: str | None = None
    outside_number: str | None = None
    answered_on: str | None = None
    queue_visits: tuple[QueueVisit, ...] = ()
    # Click-to-call: the Originate's CRMTEL_ORIGINATE_ID, and whether the placer's card went out.
    originate_id: str | None = None
    announced: bool = False
    # Click-to-call "via my mobile": the placing manager's extension (CRMTEL_MANAGER_EXTENSION), their mobile
    # (CRMTEL_MOBILE_NUMBER, E.164) and the trunk leg that rings it — the manager's line, not the client's.
    originate_extension: str | None = None
    via_mobile: str | None = None
    mobile_leg: str | None = None
    # Follow-me with confirmation (CRMTEL_FOLLOWME_TO): a mobile answering is not yet the manager taking the
    # call — its line is connected only once they pressed 1 (CRMTEL_MOBILE_CONFIRMED).
    confirm_pending: bool = False


@dataclass(frozen=True, slots=True)
class TrackerState:
    """All live calls of ONE PBX; treat as immutable (``reduce`` returns a new one)."""

    pbx: str
    region: str = "RU"
    recording_url_template: str = ""
    trunks: frozenset[str] = frozenset()
    # Devices named <prefix><ext> belong to user <ext> (FreePBX WebRTC: 99<ext>); see ``user_extension``.
    device_prefixes: tuple[str, ...] = ()
    # The managers' extensions: a device <prefix><ext> that is one of them is that phone, not <ext>'s device.
    known_extensions: frozenset[str] = frozenset()
    # The PBX's recordings folder, for the URL template's ``{relpath}``.
    recordings_dir: str = DEFAULT_RECORDINGS_DIR
    calls: Mapping[str, Call] = field(default_factory=dict)
    # Uniqueid -> Linkedid of the call that channel belongs to now.
    channels: Mapping[str, str] = field(default_factory=dict)
    # Bridge id -> Uniqueids of our channels in it.
    bridges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Linkedids of recently finished calls (oldest first, bounded): late events must not revive them.
    finished: Mapping[str, None] = field(default_factory=dict)
    # Bounds on live state whatever a PBX (or a forged stream) sends: far above any real sales PBX, a
    # new call beyond ``max_live_calls`` ends the oldest one, a channel beyond ``max_legs`` is not followed.
    max_live_calls: int = 5000
    max_legs: int = 100
    # Across a lost AMI connection (see ``sync``): when it was lost, when the PBX says it started (from
    # ``FullyBooted``'s Uptime), and whether it started again while crmtel was away (a crash or restart).
    lost_at: datetime | None = None
    booted_at: datetime | None = None
    restarted: bool = False


def leg_kind(state: TrackerState, name: str) -> tuple[LegKind, str | None]:
    """The one classification of a channel on this PBX (its trunks and device prefixes), whatever the path."""
    return classify(name, state.trunks, state.device_prefixes, state.known_extensions)


# How many finished Linkedids to remember against late events.
FINISHED_KEEP = 4096


def normalise_caller(raw: str | None, region: str) -> tuple[str | None, bool]:
    """Caller number as stored: E.164, extension digits, raw text for garbage; and whether it was hidden."""
    phone = normalize(raw, region)
    if phone.kind is PhoneKind.ANONYMOUS:
        return None, bool(raw)
    if phone.kind is PhoneKind.INVALID:
        return phone.raw or None, False
    return phone.value, False


def recording_url(
    template: str, pbx: str, linkedid: str, path: str | None, root: str = DEFAULT_RECORDINGS_DIR
) -> str | None:
    """The recording's URL from the template (``{pbx}``, ``{basename}``, ``{linkedid}``, ``{path}``, ``{relpath}``).

    ``{relpath}`` is the path below the recordings folder ``root``, FreePBX's ``YYYY/MM/DD/`` folders included.
    """
    if not path or not template:
        return None
    values = {
        "pbx": pbx,
        "basename": path.rpartition("/")[2],
        "linkedid": linkedid,
        "path": path,
        "relpath": relpath(path, root) or path.rpartition("/")[2],
    }
    try:
        return template.format_map(values)
    except (KeyError, ValueError, IndexError, AttributeError):
        return None


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, round((end - start).total_seconds(), 3))


def never_a_call(call: Call) -> bool:
    """A failed Originate: nobody answered and it never reached anyone (the placing phone did not answer,
    or Asterisk's ``OutgoingSpoolFailed`` stand-in channel, which has no technology at all)."""
    if call.answered_by is not None or call.direction is not None or call.rang:
        return False
    return call.originate_id is not None or call.origin_kind is LegKind.OTHER


def build_record(state: TrackerState, call: Call, ended_at: datetime | None = None) -> CallRecord:
    """The call's record: a live snapshot while ``ended_at`` is None, the final record otherwise."""
    direction = call.direction or Direction.INTERNAL
    answered = call.answered_by is not None
    outcome: Outcome | None
    missed_reason: MissedReason | None = None
    if answered:
        outcome = Outcome.ANSWERED
    elif ended_at is not None:
        outcome = Outcome.MISSED
        missed_reason = call.unanswered_reason or MissedReason.NO_ANSWER
    else:
        outcome = None
    ring_end = call.answered_at if call.answered_at is not None else ended_at
    ring_seconds = _seconds(call.started_at, ring_end) if ring_end is not None else 0.0
    talk_seconds = (
        _seconds(call.answered_at, ended_at) if call.answered_at is not None and ended_at is not None else 0.0
    )
    extra: dict[str, str] = {}
    party = call.caller_number if direction is Direction.INBOUND else call.dialled_e164
    if party is not None and party.startswith("+"):
        extra["party_number"] = party
    if call.caller_hidden:
        extra["caller_hidden"] = "true"
    if call.caller_raw is not None and call.caller_number is None:
        extra["caller_raw"] = call.caller_raw[:64]
    if call.transferred_from is not None:
        extra["transferred_from"] = call.transferred_from
    return CallRecord(
        pbx=state.pbx,
        linkedid=call.linkedid,
        direction=direction,
        caller_number=call.caller_number,
        caller_name=call.caller_name,
        dialled=call.dialled,
        started_at=call.started_at,
        rang=call.rang,
        answered_by=call.answered_by,
        queue=call.queue,
        outcome=outcome,
        missed_reason=missed_reason,
        answered_at=call.answered_at,
        ended_at=ended_at,
        ring_seconds=ring_seconds,
        talk_seconds=talk_seconds,
        recording_file=call.recording_file,
        recording_url=recording_url(
            state.recording_url_template,
            state.pbx,
            call.linkedid,
            call.recording_file,
            state.recordings_dir,
        ),
        route_kind=call.route_kind,
        route_target=call.route_target,
        route_reason=call.route_reason,
        originate_id=call.originate_id,
        extra=extra,
        queue_visits=call.queue_visits,
        answered_on=call.answered_on,
        transferred_to=call.transferred_to,
    )


def signature(call: Call) -> tuple[object, ...]:
    """The record-worthy part of a call: a change here is worth a ``CallUpdated``."""
    return (
        call.direction,
        call.caller_number,
        call.caller_name,
        call.dialled,
        call.rang,
        call.answered_by,
        call.answered_on,
        call.queue,
        call.recording_file,
        call.route_kind,
        call.route_target,
        call.route_reason,
        call.queue_visits,
        call.originate_id,
    )
