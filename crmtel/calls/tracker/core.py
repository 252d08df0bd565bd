"""Call tracker primitives: a new state, attaching channels to calls, answering, ending."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind, dialled_number
from crmtel.calls.tracker import visits
from crmtel.calls.tracker.model import (
    Call,
    Leg,
    TrackerState,
    build_record,
    leg_kind,
    never_a_call,
    normalise_caller,
)
from crmtel.calls.tracker.tx import Tx
from crmtel.domain import (
    CallAnswered,
    CallDiscarded,
    CallEnded,
    CallRinging,
    CallRingStopped,
    Direction,
    MissedReason,
    QueueOutcome,
    StopReason,
)
from crmtel.phones import PhoneKind, normalize
from crmtel.recordings import DEFAULT_RECORDINGS_DIR

UNANSWERED = {
    "NOANSWER": MissedReason.NO_ANSWER,
    "BUSY": MissedReason.BUSY,
    "CONGESTION": MissedReason.NO_ANSWER,
    "CHANUNAVAIL": MissedReason.NO_ANSWER,
}


def new_state(
    pbx: str,
    region: str = "RU",
    recording_url_template: str = "",
    trunks: frozenset[str] | set[str] | tuple[str, ...] = (),
    device_prefixes: tuple[str, ...] = (),
    recordings_dir: str = DEFAULT_RECORDINGS_DIR,
    known_extensions: Iterable[str] = (),
) -> TrackerState:
    """An empty tracker state for one PBX."""
    return TrackerState(
        pbx=pbx,
        region=region,
        recording_url_template=recording_url_template,
        trunks=frozenset(trunks),
        device_prefixes=device_prefixes,
        recordings_dir=recordings_dir,
        known_extensions=frozenset(known_extensions),
    )


# -- channels and calls ---------------------------------------------------------------------------
def origin_facts(tx: Tx, call: Call, ch: ev.ChannelInfo, leg: Leg) -> Call:
    """Fill in who called whom from the originating channel (Uniqueid == Linkedid)."""
    region = tx.state.region
    direction: Direction | None = None
    dialled = dialled_number(ch.exten)
    if leg.kind is LegKind.TRUNK:
        direction = Direction.INBOUND
    elif leg.kind is LegKind.EXTENSION and dialled is not None:
        kind = normalize(dialled, region).kind
        direction = Direction.INTERNAL if kind is PhoneKind.EXTENSION else Direction.OUTBOUND
    if leg.kind is LegKind.EXTENSION:
        number, hidden, raw = leg.extension, False, ch.caller_num
    else:
        number, hidden = normalise_caller(ch.caller_num, region)
        raw = ch.caller_num
    call = replace(
        call,
        origin_kind=leg.kind,
        direction=call.direction or direction,
        caller_raw=raw,
        caller_number=number,
        caller_hidden=hidden,
        caller_name=ch.caller_name,
        placed_by=leg.extension if leg.kind is LegKind.EXTENSION else None,
    )
    # A Local origin's extension is where the Local channel goes, not a number anyone dialled.
    if call.dialled is None and dialled is not None and leg.kind in (LegKind.TRUNK, LegKind.EXTENSION):
        call = set_dialled(tx, call, dialled)
    return call


def set_dialled(tx: Tx, call: Call, dialled: str) -> Call:
    """Record the dialled number and its E.164 form."""
    phone = normalize(dialled, tx.state.region)
    return replace(call, dialled=dialled, dialled_e164=phone.e164)


def new_call(tx: Tx, linkedid: str) -> Call:
    """A new call first seen now (announced with CallStarted when the step finishes)."""
    calls = tx.calls if tx.calls is not None else tx.state.calls
    if len(calls) >= tx.state.max_live_calls:
        # Insertion order is age: the oldest live call is ended with what is known (its record is kept).
        end_call(tx, next(iter(calls.values())))
    call = Call(linkedid=linkedid, started_at=tx.at)
    tx.started.add(linkedid)
    return call


def attach(tx: Tx, ch: ev.ChannelInfo, create: bool = True) -> Call | None:
    """The call this channel belongs to (following Linkedid changes), registering the channel if new.

    A channel of a call we never saw (its start was lost) starts one, unless that call already finished:
    late events of a finished call must not revive it.
    """
    uid, lid = ch.uniqueid, ch.linkedid
    known = tx.linkedid_of(uid)
    if known is not None:
        call = tx.call(known)
        if known == lid or call is None:
            return call
        target = tx.call(lid)
        if target is None:
            # Merged into a call we never saw: keep the channel where it is.
            return call
        leg = call.legs.get(uid)
        legs = {k: v for k, v in call.legs.items() if k != uid}
        ringing = {k: v for k, v in call.ringing.items() if k != uid}
        call = replace(call, legs=legs, ringing=ringing)
        tx.put(call)
        if not legs:
            end_call(tx, call)
        if leg is None:
            leg = make_leg(tx, ch)
        target = replace(target, legs={**target.legs, uid: leg})
        tx.put(target)
        tx.index(uid, lid)
        return target
    call = tx.call(lid)
    if call is None:
        if not create or tx.was_finished(lid):
            return None
        call = new_call(tx, lid)
    elif len(call.legs) >= tx.state.max_legs:
        return call
    leg = make_leg(tx, ch)
    call = replace(call, legs={**call.legs, uid: leg})
    if uid == lid and call.origin_kind is None:
        call = origin_facts(tx, call, ch, leg)
    tx.put(call)
    tx.index(uid, lid)
    return call


def make_leg(tx: Tx, ch: ev.ChannelInfo) -> Leg:
    """Classify a channel snapshot into a leg."""
    kind, extension = leg_kind(tx.state, ch.name)
    return Leg(ch.uniqueid, ch.name, kind, extension, up=ch.state == 6)


def leg_of(tx: Tx, ch: ev.ChannelInfo) -> Leg:
    """The known leg for a channel snapshot (re-classified if the channel was renamed), or a new one."""
    lid = tx.linkedid_of(ch.uniqueid)
    call = tx.call(lid) if lid is not None else None
    leg = call.legs.get(ch.uniqueid) if call is not None else None
    if leg is None:
        return make_leg(tx, ch)
    return leg if leg.name == ch.name else renamed(tx, leg, ch.name)


def renamed(tx: Tx, leg: Leg, name: str) -> Leg:
    """The leg under a new channel name (pickups and masquerades swap who is on the line)."""
    kind, extension = leg_kind(tx.state, name)
    return replace(leg, name=name, kind=kind, extension=extension)


def end_call(tx: Tx, call: Call) -> None:
    """The call's last channel is gone: emit its final record and forget it."""
    for extension in dict.fromkeys(call.ringing.values()):
        tx.emit(
            CallRingStopped(tx.cid(call.linkedid), extension, StopReason.HUNG_UP, call.answered_by, tx.at)
        )
    for uid in call.legs:
        if tx.linkedid_of(uid) == call.linkedid:
            tx.index(uid, None)
    call = leave_queue(tx, call, QueueOutcome.ABANDONED)
    record = build_record(tx.state, call, ended_at=tx.at)
    tx.drop(call.linkedid)
    tx.before.pop(call.linkedid, None)
    tx.started.discard(call.linkedid)
    tx.ended.add(call.linkedid)
    tx.remember_finished(call.linkedid)
    if never_a_call(call):
        tx.emit(CallDiscarded(tx.cid(call.linkedid), call.linkedid, call.originate_id, tx.at))
        return
    tx.emit(CallEnded(tx.cid(call.linkedid), record, tx.at))


def answer(tx: Tx, call: Call, extension: str | None) -> Call:
    """``extension`` took the call (first answer, or the first one after a transfer)."""
    if extension is None:
        return call
    if call.answered_by is not None and not call.transfer_pending:
        return call
    if call.answered_by is None:
        call = leave_queue(tx, call, QueueOutcome.ANSWERED, extension)
    previous = call.answered_by if call.transfer_pending and call.answered_by != extension else None
    call = replace(
        call,
        answered_by=extension,
        answered_at=call.answered_at or tx.at,
        transfer_pending=False,
        transferred_from=previous or call.transferred_from,
        in_queue=False,
    )
    tx.emit(CallAnswered(tx.cid(call.linkedid), extension, tx.at))
    return call


def leave_queue(tx: Tx, call: Call, outcome: QueueOutcome, answered_by: str | None = None) -> Call:
    """End the caller's wait in a queue, if they are waiting in one (announced as ``CallQueued``)."""
    call, queued = visits.left(tx.state.pbx, call, outcome, tx.at, answered_by)
    if queued is not None:
        tx.emit(queued)
    return call


def announce_outbound(tx: Tx, call: Call) -> Call:
    """An outbound call that now dials out shows its card on the placing phone (once): dialled on the desk
    phone or placed by click-to-call (then with its ``originate_id``) alike."""
    if call.announced or call.direction is not Direction.OUTBOUND:
        return call
    if call.placed_by is None:
        return call
    tx.emit(
        CallRinging(
            call_id=tx.cid(call.linkedid),
            pbx=tx.state.pbx,
            linkedid=call.linkedid,
            extension=call.placed_by,
            direction=Direction.OUTBOUND,
            caller_number=call.caller_number,
            caller_name=call.caller_name,
            dialled=call.dialled,
            queue=call.queue,
            at=tx.at,
            originate_id=call.originate_id,
        )
    )
    return replace(call, announced=True)


def origin_extension(call: Call) -> str | None:
    """The extension of the phone that placed the call, if a phone did."""
    return call.placed_by


def unbridge(tx: Tx, bridge_id: str, uid: str) -> None:
    """Forget that a channel is in a bridge."""
    tx.set_bridge(bridge_id, tuple(u for u in tx.bridge_members(bridge_id) if u != uid))


def answer_by_bridge(tx: Tx, call: Call, members: tuple[str, ...]) -> Call:
    """Fallback when no DialEnd said who answered (pickups, originates): the bridge says who talks."""
    legs = [call.legs[u] for u in members if u in call.legs]
    if call.direction is Direction.OUTBOUND:
        # "Via my mobile": the manager's own mobile bridged to the Local channel's ``;2`` half is not the client.
        # The ``;2`` half bridges it in its own thread while the answered ``;1`` half already dials the client,
        # so that BridgeEnter may come after the client's DialBegin (the call is outbound by then).
        if any(leg.kind is LegKind.TRUNK and leg.uniqueid != call.mobile_leg for leg in legs):
            return answer(tx, call, origin_extension(call))
        return call
    for leg in legs:
        if leg.kind is LegKind.EXTENSION and leg.uniqueid != call.linkedid:
            return answer(tx, call, leg.extension)
    return call
