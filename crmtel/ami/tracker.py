"""The call tracker: a pure reducer ``(state, event) -> (state, effects)`` for one PBX.

Calls are keyed by Linkedid; a channel whose Linkedid changes (bridging, transfers) moves to that call,
and a call ends when its last channel is gone. Only real phones count (``Local/`` halves never answer);
an extension is a channel whose endpoint is a short number, any other named endpoint (or one listed in
``trunks``) is a trunk. Record conventions: ``caller_number`` is E.164 for outside numbers, the digits for
extensions, None for hidden numbers (``extra["caller_hidden"]``); ``caller_name`` ``<unknown>`` is None;
``dialled`` is kept as dialled; ``extra["party_number"]`` is the outside party in E.164 (caller inbound,
dialled number outbound) for CRM matching. Route variables keep the first non-empty value (the CRM's
decision, not the dialplan's later fallback).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeAlias

from crmtel.ami import events as ev
from crmtel.ami.tracker_model import (
    Call,
    Leg,
    LegKind,
    TrackerState,
    build_record,
    classify,
    dialled_number,
    normalise_caller,
    number_from_dial_string,
    signature,
)
from crmtel.domain import (
    CallAnswered,
    CallEnded,
    CallRecord,
    CallRinging,
    CallRingStopped,
    Direction,
    MissedReason,
    call_id,
)
from crmtel.phones import PhoneKind, normalize


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call the tracker did not know appeared; ``record`` is its first live snapshot."""

    call_id: str
    record: CallRecord
    at: datetime


@dataclass(frozen=True, slots=True)
class CallUpdated:
    """Something record-worthy changed in a live call (rang, answered, queue, recording, route…)."""

    call_id: str
    record: CallRecord
    at: datetime


Effect: TypeAlias = CallStarted | CallUpdated | CallRinging | CallRingStopped | CallAnswered | CallEnded

_DIAL_STOP_REASON = {
    "NOANSWER": "no answer",
    "BUSY": "busy",
    "CONGESTION": "unavailable",
    "CHANUNAVAIL": "unavailable",
}
_HANGUP_STOP_REASON = {26: "answered elsewhere", 17: "busy", 18: "no answer", 19: "no answer", 21: "rejected"}
_UNANSWERED = {
    "NOANSWER": MissedReason.NO_ANSWER,
    "BUSY": MissedReason.BUSY,
    "CONGESTION": MissedReason.NO_ANSWER,
    "CHANUNAVAIL": MissedReason.NO_ANSWER,
}


class _Tx:
    """One reduce step: copy-on-write views of the state's maps plus the effects emitted so far."""

    __slots__ = ("at", "before", "bridges", "calls", "channels", "effects", "ended", "started", "state")

    def __init__(self, state: TrackerState, at: datetime) -> None:
        self.state = state
        self.at = at
        self.calls: dict[str, Call] | None = None
        self.channels: dict[str, str] | None = None
        self.bridges: dict[str, tuple[str, ...]] | None = None
        self.effects: list[Effect] = []
        # Linkedid -> the call as it was before this step (for CallUpdated), and calls born/ended here.
        self.before: dict[str, Call] = {}
        self.started: set[str] = set()
        self.ended: set[str] = set()

    # -- reading ---------------------------------------------------------------------------------
    def call(self, linkedid: str) -> Call | None:
        return (self.calls if self.calls is not None else self.state.calls).get(linkedid)

    def linkedid_of(self, uniqueid: str) -> str | None:
        return (self.channels if self.channels is not None else self.state.channels).get(uniqueid)

    def bridge_members(self, bridge_id: str) -> tuple[str, ...]:
        return (self.bridges if self.bridges is not None else self.state.bridges).get(bridge_id, ())

    # -- writing ---------------------------------------------------------------------------------
    def put(self, call: Call) -> None:
        if self.calls is None:
            self.calls = dict(self.state.calls)
        old = self.calls.get(call.linkedid)
        if old is not None and call.linkedid not in self.before:
            self.before[call.linkedid] = old
        self.calls[call.linkedid] = call

    def drop(self, linkedid: str) -> None:
        if self.calls is None:
            self.calls = dict(self.state.calls)
        self.calls.pop(linkedid, None)

    def index(self, uniqueid: str, linkedid: str | None) -> None:
        if self.channels is None:
            self.channels = dict(self.state.channels)
        if linkedid is None:
            self.channels.pop(uniqueid, None)
        else:
            self.channels[uniqueid] = linkedid

    def set_bridge(self, bridge_id: str, members: tuple[str, ...]) -> None:
        if self.bridges is None:
            self.bridges = dict(self.state.bridges)
        if members:
            self.bridges[bridge_id] = members
        else:
            self.bridges.pop(bridge_id, None)

    def emit(self, effect: Effect) -> None:
        self.effects.append(effect)

    def finish(self) -> tuple[TrackerState, tuple[Effect, ...]]:
        calls = self.calls if self.calls is not None else self.state.calls
        for linkedid in sorted(self.started):
            call = calls.get(linkedid)
            if call is not None:
                self.effects.insert(
                    0, CallStarted(self.cid(linkedid), build_record(self.state, call), self.at)
                )
        for linkedid, old in self.before.items():
            call = calls.get(linkedid)
            if call is None or linkedid in self.started or signature(call) == signature(old):
                continue
            self.effects.append(CallUpdated(self.cid(linkedid), build_record(self.state, call), self.at))
        if self.calls is None and self.channels is None and self.bridges is None:
            return self.state, tuple(self.effects)
        state = replace(
            self.state,
            calls=calls,
            channels=self.channels if self.channels is not None else self.state.channels,
            bridges=self.bridges if self.bridges is not None else self.state.bridges,
        )
        return state, tuple(self.effects)

    def cid(self, linkedid: str) -> str:
        return call_id(self.state.pbx, linkedid)


def new_state(
    pbx: str,
    region: str = "RU",
    recording_url_template: str = "/recordings/{pbx}/{basename}",
    trunks: frozenset[str] | set[str] | tuple[str, ...] = (),
) -> TrackerState:
    """An empty tracker state for one PBX."""
    return TrackerState(
        pbx=pbx, region=region, recording_url_template=recording_url_template, trunks=frozenset(trunks)
    )


# -- channels and calls ---------------------------------------------------------------------------
def _origin_facts(tx: _Tx, call: Call, ch: ev.ChannelInfo, leg: Leg) -> Call:
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
    )
    if call.dialled is None and dialled is not None:
        call = _set_dialled(tx, call, dialled)
    return call


def _set_dialled(tx: _Tx, call: Call, dialled: str) -> Call:
    phone = normalize(dialled, tx.state.region)
    return replace(call, dialled=dialled, dialled_e164=phone.e164)


def _new_call(tx: _Tx, linkedid: str) -> Call:
    call = Call(linkedid=linkedid, started_at=tx.at)
    tx.started.add(linkedid)
    return call


def _attach(tx: _Tx, ch: ev.ChannelInfo, create: bool = True) -> Call | None:
    """The call this channel belongs to (following Linkedid changes), registering the channel if new."""
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
            _end(tx, call)
        if leg is None:
            leg = _make_leg(tx, ch)
        target = replace(target, legs={**target.legs, uid: leg})
        tx.put(target)
        tx.index(uid, lid)
        return target
    call = tx.call(lid)
    if call is None:
        if not create:
            return None
        call = _new_call(tx, lid)
    leg = _make_leg(tx, ch)
    call = replace(call, legs={**call.legs, uid: leg})
    if uid == lid and call.origin_kind is None:
        call = _origin_facts(tx, call, ch, leg)
    tx.put(call)
    tx.index(uid, lid)
    return call


def _make_leg(tx: _Tx, ch: ev.ChannelInfo) -> Leg:
    kind, extension = classify(ch.name, tx.state.trunks)
    return Leg(ch.uniqueid, ch.name, kind, extension, up=ch.state == 6)


def _leg(tx: _Tx, ch: ev.ChannelInfo) -> Leg:
    """The known leg for a channel snapshot, or a fresh classification of it."""
    lid = tx.linkedid_of(ch.uniqueid)
    call = tx.call(lid) if lid is not None else None
    leg = call.legs.get(ch.uniqueid) if call is not None else None
    return leg if leg is not None else _make_leg(tx, ch)


def _end(tx: _Tx, call: Call) -> None:
    """The call's last channel is gone: emit its final record and forget it."""
    for uid, extension in call.ringing.items():
        tx.emit(CallRingStopped(tx.cid(call.linkedid), extension, "hung up", call.answered_by, tx.at))
        del uid
    for uid in call.legs:
        if tx.linkedid_of(uid) == call.linkedid:
            tx.index(uid, None)
    record = build_record(tx.state, call, ended_at=tx.at)
    tx.drop(call.linkedid)
    tx.before.pop(call.linkedid, None)
    tx.started.discard(call.linkedid)
    tx.ended.add(call.linkedid)
    tx.emit(CallEnded(tx.cid(call.linkedid), record, tx.at))


def _answer(tx: _Tx, call: Call, extension: str | None) -> Call:
    if extension is None:
        return call
    if call.answered_by is not None and not call.transfer_pending:
        return call
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


def _origin_extension(call: Call) -> str | None:
    leg = call.legs.get(call.linkedid)
    if leg is not None and leg.extension is not None:
        return leg.extension
    return call.caller_number if call.origin_kind is LegKind.EXTENSION else None


# -- handlers -------------------------------------------------------------------------------------
def _on_channel(tx: _Tx, event: Any) -> None:
    call = _attach(tx, event.channel)
    if call is None:
        return
    uid = event.channel.uniqueid
    leg = call.legs.get(uid)
    if isinstance(event, ev.Newstate) and leg is not None and event.channel.state == 6 and not leg.up:
        tx.put(replace(call, legs={**call.legs, uid: replace(leg, up=True)}))
    elif (
        isinstance(event, ev.NewCallerid)
        and uid == call.linkedid
        and call.origin_kind is not LegKind.EXTENSION
    ):
        number, hidden = normalise_caller(event.channel.caller_num, tx.state.region)
        if number is not None or hidden:
            tx.put(
                replace(
                    call,
                    caller_raw=event.channel.caller_num,
                    caller_number=number,
                    caller_hidden=hidden,
                    caller_name=event.channel.caller_name or call.caller_name,
                )
            )


def _on_dial_begin(tx: _Tx, event: ev.DialBegin) -> None:
    if event.channel is not None:
        _attach(tx, event.channel)
    call = _attach(tx, event.dest)
    if call is None:
        return
    dest = _leg(tx, event.dest)
    if call.direction is None:
        if dest.kind is LegKind.TRUNK:
            call = replace(call, direction=Direction.OUTBOUND)
            if call.dialled is None:
                number = number_from_dial_string(event.dial_string) or dialled_number(event.dest.exten)
                if number is not None:
                    call = _set_dialled(tx, call, number)
        elif dest.kind is LegKind.EXTENSION:
            call = replace(call, direction=Direction.INTERNAL)
    if dest.kind is LegKind.EXTENSION and dest.extension is not None and event.dest.uniqueid != call.linkedid:
        extension = dest.extension
        rang = call.rang if extension in call.rang else (*call.rang, extension)
        call = replace(call, rang=rang, ringing={**call.ringing, event.dest.uniqueid: extension})
        tx.emit(
            CallRinging(
                call_id=tx.cid(call.linkedid),
                pbx=tx.state.pbx,
                linkedid=call.linkedid,
                extension=extension,
                direction=call.direction or Direction.INTERNAL,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                dialled=call.dialled,
                queue=call.queue,
                at=tx.at,
            )
        )
    tx.put(call)


def _on_dial_end(tx: _Tx, event: ev.DialEnd) -> None:
    if event.channel is not None:
        _attach(tx, event.channel)
    call = _attach(tx, event.dest)
    if call is None:
        return
    dest = _leg(tx, event.dest)
    uid = event.dest.uniqueid
    status = event.status
    if status == "ANSWER":
        if uid in call.ringing:
            call = replace(call, ringing={k: v for k, v in call.ringing.items() if k != uid})
        if dest.kind is LegKind.EXTENSION:
            call = _answer(tx, call, dest.extension)
        elif dest.kind is LegKind.TRUNK and call.direction is Direction.OUTBOUND:
            call = _answer(tx, call, _origin_extension(call))
        tx.put(call)
        return
    extension = call.ringing.get(uid)
    if extension is not None:
        call = replace(call, ringing={k: v for k, v in call.ringing.items() if k != uid})
        if status == "CANCEL":
            reason = "answered elsewhere" if call.answered_by is not None else "cancelled"
        else:
            reason = _DIAL_STOP_REASON.get(status, status.lower()[:40])
        tx.emit(CallRingStopped(tx.cid(call.linkedid), extension, reason, call.answered_by, tx.at))
    if call.answered_by is None and dest.kind in (LegKind.EXTENSION, LegKind.TRUNK):
        if status == "CANCEL":
            unanswered = (
                MissedReason.ABANDONED_IN_QUEUE if call.in_queue else MissedReason.CALLER_HUNG_UP_RINGING
            )
            if call.direction is Direction.OUTBOUND:
                unanswered = MissedReason.NO_ANSWER
        else:
            unanswered = _UNANSWERED.get(status, MissedReason.NO_ANSWER)
        call = replace(call, unanswered_reason=unanswered)
    tx.put(call)


def _on_hangup(tx: _Tx, event: ev.Hangup) -> None:
    uid = event.channel.uniqueid
    linkedid = tx.linkedid_of(uid)
    call = tx.call(linkedid) if linkedid is not None else None
    if call is None:
        return
    leg = call.legs.get(uid)
    legs = {k: v for k, v in call.legs.items() if k != uid}
    changes: dict[str, Any] = {"legs": legs}
    extension = call.ringing.get(uid)
    if extension is not None:
        changes["ringing"] = {k: v for k, v in call.ringing.items() if k != uid}
        reason = _HANGUP_STOP_REASON.get(event.cause or 0, "hung up")
        tx.emit(CallRingStopped(tx.cid(call.linkedid), extension, reason, call.answered_by, tx.at))
    if uid == call.linkedid and call.answered_by is None and call.in_queue:
        changes["unanswered_reason"] = MissedReason.ABANDONED_IN_QUEUE
        changes["in_queue"] = False
    call = replace(call, **changes)
    if leg is not None and leg.bridge is not None:
        _unbridge(tx, leg.bridge, uid)
    tx.index(uid, None)
    tx.put(call)
    if not legs:
        _end(tx, call)


def _unbridge(tx: _Tx, bridge_id: str, uid: str) -> None:
    tx.set_bridge(bridge_id, tuple(u for u in tx.bridge_members(bridge_id) if u != uid))


def _on_bridge_enter(tx: _Tx, event: ev.BridgeEnter) -> None:
    call = _attach(tx, event.channel)
    if call is None:
        return
    uid = event.channel.uniqueid
    leg = call.legs[uid]
    if leg.bridge is not None and leg.bridge != event.bridge_id:
        _unbridge(tx, leg.bridge, uid)
    members = tx.bridge_members(event.bridge_id)
    if uid not in members:
        members = (*members, uid)
        tx.set_bridge(event.bridge_id, members)
    call = replace(call, legs={**call.legs, uid: replace(leg, bridge=event.bridge_id, up=True)})
    if call.answered_by is None and len(members) >= 2:
        call = _answer_by_bridge(tx, call, members)
    tx.put(call)


def _answer_by_bridge(tx: _Tx, call: Call, members: tuple[str, ...]) -> Call:
    """Fallback when no DialEnd said who answered (pickups, originates): the bridge says who talks."""
    legs = [call.legs[u] for u in members if u in call.legs]
    if call.direction is Direction.OUTBOUND:
        if any(leg.kind is LegKind.TRUNK for leg in legs):
            return _answer(tx, call, _origin_extension(call))
        return call
    for leg in legs:
        if leg.kind is LegKind.EXTENSION and leg.uniqueid != call.linkedid:
            return _answer(tx, call, leg.extension)
    return call


def _on_bridge_leave(tx: _Tx, event: ev.BridgeLeave) -> None:
    uid = event.channel.uniqueid
    linkedid = tx.linkedid_of(uid)
    call = tx.call(linkedid) if linkedid is not None else None
    _unbridge(tx, event.bridge_id, uid)
    if call is None:
        return
    leg = call.legs.get(uid)
    if leg is not None and leg.bridge == event.bridge_id:
        tx.put(replace(call, legs={**call.legs, uid: replace(leg, bridge=None)}))


def _on_var_set(tx: _Tx, event: ev.VarSet) -> None:
    call = _attach(tx, event.channel)
    if call is None or event.value is None:
        return
    value = event.value[:500]
    variable = event.variable
    if variable == "MIXMONITOR_FILENAME":
        if call.recording_file is None:
            tx.put(replace(call, recording_file=value))
        return
    if event.channel.uniqueid != call.linkedid:
        return
    if variable == "CRMTEL_ROUTE_KIND" and call.route_kind is None:
        tx.put(replace(call, route_kind=value[:20]))
    elif variable == "CRMTEL_ROUTE_TARGET" and call.route_target is None:
        tx.put(replace(call, route_target=value[:64]))
    elif variable == "CRMTEL_ROUTE_REASON" and call.route_reason is None:
        tx.put(replace(call, route_reason=value))


def _on_queue_join(tx: _Tx, event: ev.QueueCallerJoin) -> None:
    call = _attach(tx, event.channel)
    if call is not None:
        tx.put(replace(call, queue=event.queue[:64], in_queue=True))


def _on_queue_leave(tx: _Tx, event: ev.QueueCallerLeave) -> None:
    call = _attach(tx, event.channel)
    if call is None:
        return
    changes: dict[str, Any] = {"in_queue": False}
    if call.answered_by is None and call.unanswered_reason is not MissedReason.ABANDONED_IN_QUEUE:
        changes["unanswered_reason"] = MissedReason.NO_ANSWER
    if call.in_queue or changes.keys() - {"in_queue"}:
        tx.put(replace(call, **changes))


def _on_queue_abandon(tx: _Tx, event: ev.QueueCallerAbandon) -> None:
    call = _attach(tx, event.channel)
    if call is not None and call.answered_by is None:
        tx.put(
            replace(
                call,
                queue=event.queue[:64],
                in_queue=False,
                unanswered_reason=MissedReason.ABANDONED_IN_QUEUE,
            )
        )


def _on_agent_connect(tx: _Tx, event: ev.AgentConnect) -> None:
    call = _attach(tx, event.channel)
    if call is None or event.dest is None or call.answered_by is not None:
        return
    dest = _leg(tx, event.dest)
    if dest.kind is LegKind.EXTENSION:
        tx.put(_answer(tx, call, dest.extension))


def _on_blind_transfer(tx: _Tx, event: ev.BlindTransfer) -> None:
    if event.result.lower() != "success":
        return
    party = event.transferee or event.transferer
    if party is None:
        return
    call = _attach(tx, party)
    if call is not None and call.answered_by is not None:
        tx.put(replace(call, transfer_pending=True))


def _other_member(tx: _Tx, bridge_id: str | None, exclude: ev.ChannelInfo | None) -> str | None:
    if bridge_id is None:
        return None
    skip = exclude.uniqueid if exclude is not None else None
    for uid in tx.bridge_members(bridge_id):
        if uid != skip:
            return uid
    return None


def _on_attended_transfer(tx: _Tx, event: ev.AttendedTransfer) -> None:
    if event.result.lower() != "success":
        return
    transferee_uid = (
        event.transferee.uniqueid
        if event.transferee is not None
        else _other_member(tx, event.orig_bridge_id, event.orig_transferer)
    )
    if event.transfer_target is not None:
        target = _leg(tx, event.transfer_target)
    else:
        target_uid = _other_member(tx, event.second_bridge_id, event.second_transferer)
        target_lid = tx.linkedid_of(target_uid) if target_uid is not None else None
        target_call = tx.call(target_lid) if target_lid is not None else None
        found = (
            target_call.legs.get(target_uid) if target_call is not None and target_uid is not None else None
        )
        if found is None:
            return
        target = found
    lid = tx.linkedid_of(transferee_uid) if transferee_uid is not None else None
    call = tx.call(lid) if lid is not None else None
    if call is None or target.kind is not LegKind.EXTENSION or target.extension is None:
        return
    if call.answered_by == target.extension:
        return
    tx.put(_answer(tx, replace(call, transfer_pending=True), target.extension))


def _on_rename(tx: _Tx, event: ev.Rename) -> None:
    lid = tx.linkedid_of(event.uniqueid)
    call = tx.call(lid) if lid is not None else None
    leg = call.legs.get(event.uniqueid) if call is not None else None
    if call is not None and leg is not None:
        tx.put(replace(call, legs={**call.legs, event.uniqueid: replace(leg, name=event.new_name)}))


def _ignore(tx: _Tx, event: Any) -> None:
    return None


_HANDLERS: dict[type[Any], Callable[[_Tx, Any], None]] = {
    ev.Newchannel: _on_channel,
    ev.Newstate: _on_channel,
    ev.NewCallerid: _on_channel,
    ev.NewConnectedLine: _on_channel,
    ev.DialBegin: _on_dial_begin,
    ev.DialState: _ignore,
    ev.DialEnd: _on_dial_end,
    ev.BridgeEnter: _on_bridge_enter,
    ev.BridgeLeave: _on_bridge_leave,
    ev.Hangup: _on_hangup,
    ev.VarSet: _on_var_set,
    ev.QueueCallerJoin: _on_queue_join,
    ev.QueueCallerLeave: _on_queue_leave,
    ev.QueueCallerAbandon: _on_queue_abandon,
    ev.AgentCalled: _ignore,
    ev.AgentConnect: _on_agent_connect,
    ev.AgentComplete: _ignore,
    ev.AgentRingNoAnswer: _ignore,
    ev.BlindTransfer: _on_blind_transfer,
    ev.AttendedTransfer: _on_attended_transfer,
    ev.Rename: _on_rename,
    ev.LocalBridge: _ignore,
    # Resync is explicit (``resync``), so the listing itself changes nothing.
    ev.CoreShowChannel: _ignore,
    ev.CoreShowChannelsComplete: _ignore,
    ev.FullyBooted: _ignore,
    ev.Cdr: _ignore,
}


def reduce(state: TrackerState, event: ev.AmiEvent) -> tuple[TrackerState, tuple[Effect, ...]]:
    """Apply one event: the new state and what happened (live call events, started/updated/ended records)."""
    handler = _HANDLERS.get(type(event))
    if handler is None or handler is _ignore:
        return state, ()
    tx = _Tx(state, event.at)
    handler(tx, event)
    return tx.finish()
