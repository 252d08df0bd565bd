"""The call tracker: a pure reducer ``(state, event) -> (state, effects)`` for one PBX.

Calls are keyed by Linkedid; a channel whose Linkedid changes (bridging, transfers) moves to that call,
and a call ends when its last channel is gone. Only real phones count (``Local/`` halves never answer);
an extension is a channel whose endpoint is a short number, any other named endpoint (or one listed in
``trunks``) is a trunk. Record conventions: ``caller_number`` is E.164 for outside numbers, the digits for
extensions, None for hidden numbers (``extra["caller_hidden"]``); ``caller_name`` ``<unknown>`` is None;
``dialled`` is kept as dialled; ``extra["party_number"]`` is the outside party in E.164 (caller inbound,
dialled number outbound) for CRM matching. Route variables keep the first non-empty value (the CRM's
decision, not the dialplan's later fallback). After a transfer the extension that takes the call over
becomes ``answered_by`` (``extra["transferred_from"]`` keeps the previous owner). A channel of an
unknown call (its start was lost) starts one with what is known; a recently finished call is never revived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind, dialled_number, local_base, number_from_dial_string
from crmtel.calls.tracker import visits
from crmtel.calls.tracker.core import (
    DIAL_STOP_REASON,
    HANGUP_STOP_REASON,
    UNANSWERED,
    Effect,
    Tx,
    announce_click,
    answer,
    answer_by_bridge,
    attach,
    end_call,
    leave_queue,
    leg_of,
    origin_extension,
    renamed,
    set_dialled,
    unbridge,
)
from crmtel.calls.tracker.model import Call, Leg, TrackerState, normalise_caller
from crmtel.domain import CallRinging, CallRingStopped, Direction, MissedReason, QueueOutcome


# -- handlers -------------------------------------------------------------------------------------
def _on_channel(tx: Tx, event: Any) -> None:
    call = attach(tx, event.channel)
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
                    caller_name=_network_name(call, event.channel),
                )
            )


def _network_name(call: Call, channel: ev.ChannelInfo) -> str | None:
    """The caller's name as the network sent it: a trunk's first ``CallerIDName`` is kept for good.

    A dialplan that sets ``CALLERID(name)`` for the phones' display (the CRM's name of the client) makes
    Asterisk send a ``NewCallerid`` with that name; the record keeps what the caller's network sent.
    """
    if call.origin_kind is LegKind.TRUNK:
        return call.caller_name
    return channel.caller_name or call.caller_name


def _on_dial_begin(tx: Tx, event: ev.DialBegin) -> None:
    if event.channel is not None:
        attach(tx, event.channel)
    call = attach(tx, event.dest)
    if call is None:
        return
    if event.dest.uniqueid == call.linkedid:
        # An Originate ringing the placing phone itself (click-to-call): nobody is offered the call yet.
        tx.put(call)
        return
    dest = leg_of(tx, event.dest)
    if _rings_the_placer(call, event.channel, dest):
        # FreePBX-style click-to-call: Originate(Local/101@…) rings the manager's own phone first.
        tx.put(replace(call, placed_by=dest.extension, caller_number=dest.extension, caller_hidden=False))
        return
    if call.direction is None:
        if dest.kind is LegKind.TRUNK:
            call = replace(call, direction=Direction.OUTBOUND)
            if call.dialled is None:
                number = number_from_dial_string(event.dial_string) or dialled_number(event.dest.exten)
                if number is not None:
                    call = set_dialled(tx, call, number)
        elif dest.kind is LegKind.EXTENSION:
            call = replace(call, direction=Direction.INTERNAL)
        call = announce_click(tx, call)
    if dest.kind is LegKind.EXTENSION and dest.extension is not None:
        extension = dest.extension
        rang = call.rang if extension in call.rang else (*call.rang, extension)
        # A user's second device (desk phone + WebRTC 99<ext>) rings the same card: announce it once.
        already = extension in call.ringing.values()
        call = replace(call, rang=rang, ringing={**call.ringing, event.dest.uniqueid: extension})
        call = visits.offered(call, extension)
        if already:
            tx.put(call)
            return
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


def _rings_the_placer(call: Call, channel: ev.ChannelInfo | None, dest: Leg) -> bool:
    """Whether the ``;2`` half of the originating Local channel is dialling the phone that places the call."""
    if call.direction is not None or call.origin_kind is not LegKind.LOCAL or channel is None:
        return False
    if dest.kind is not LegKind.EXTENSION:
        return False
    origin = call.legs.get(call.linkedid)
    base = local_base(channel.name)
    return origin is not None and base is not None and base == local_base(origin.name)


def _on_dial_end(tx: Tx, event: ev.DialEnd) -> None:
    if event.channel is not None:
        attach(tx, event.channel)
    call = attach(tx, event.dest)
    if call is None:
        return
    dest = leg_of(tx, event.dest)
    uid = event.dest.uniqueid
    status = event.status
    placer = call.direction is None and dest.extension is not None and dest.extension == call.placed_by
    if uid == call.linkedid or placer:
        # The placing phone answered (or refused) its own Originate: the far end has not been called yet.
        if status != "ANSWER" and call.answered_by is None:
            tx.put(replace(call, unanswered_reason=UNANSWERED.get(status, MissedReason.NO_ANSWER)))
        return
    if status == "ANSWER":
        if uid in call.ringing:
            call = replace(call, ringing={k: v for k, v in call.ringing.items() if k != uid})
        if dest.kind is LegKind.EXTENSION:
            call = answer(tx, call, dest.extension)
        elif dest.kind is LegKind.TRUNK and call.direction is Direction.OUTBOUND:
            call = answer(tx, call, origin_extension(call))
        tx.put(call)
        return
    extension = call.ringing.get(uid)
    if extension is not None:
        call = replace(call, ringing={k: v for k, v in call.ringing.items() if k != uid})
    # The same user's other device still rings, or took the call: that card stays as it is.
    if extension is not None and (extension in call.ringing.values() or extension == call.answered_by):
        extension = None
    if extension is not None:
        if status == "CANCEL":
            reason = "answered elsewhere" if call.answered_by is not None else "cancelled"
        else:
            reason = DIAL_STOP_REASON.get(status, status.lower()[:40])
        tx.emit(CallRingStopped(tx.cid(call.linkedid), extension, reason, call.answered_by, tx.at))
    if call.answered_by is None and dest.kind in (LegKind.EXTENSION, LegKind.TRUNK):
        if status == "CANCEL":
            unanswered = (
                MissedReason.ABANDONED_IN_QUEUE if call.in_queue else MissedReason.CALLER_HUNG_UP_RINGING
            )
            if call.direction is Direction.OUTBOUND:
                unanswered = MissedReason.NO_ANSWER
        else:
            unanswered = UNANSWERED.get(status, MissedReason.NO_ANSWER)
        call = replace(call, unanswered_reason=unanswered)
    tx.put(call)


def _on_hangup(tx: Tx, event: ev.Hangup) -> None:
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
        changes["ringing"] = ringing = {k: v for k, v in call.ringing.items() if k != uid}
    if extension is not None and extension not in ringing.values() and extension != call.answered_by:
        reason = HANGUP_STOP_REASON.get(event.cause or 0, "hung up")
        tx.emit(CallRingStopped(tx.cid(call.linkedid), extension, reason, call.answered_by, tx.at))
    if uid == call.linkedid and call.answered_by is None and call.in_queue:
        changes["unanswered_reason"] = MissedReason.ABANDONED_IN_QUEUE
        changes["in_queue"] = False
    call = replace(call, **changes)
    if uid == call.linkedid and call.answered_by is None:
        call = leave_queue(tx, call, QueueOutcome.ABANDONED)
    if leg is not None and leg.bridge is not None:
        unbridge(tx, leg.bridge, uid)
    tx.index(uid, None)
    tx.put(call)
    if not legs:
        end_call(tx, call)


def _on_bridge_enter(tx: Tx, event: ev.BridgeEnter) -> None:
    call = attach(tx, event.channel)
    if call is None:
        return
    uid = event.channel.uniqueid
    leg = call.legs[uid]
    if leg.bridge is not None and leg.bridge != event.bridge_id:
        unbridge(tx, leg.bridge, uid)
    members = tx.bridge_members(event.bridge_id)
    if uid not in members:
        members = (*members, uid)
        tx.set_bridge(event.bridge_id, members)
    call = replace(call, legs={**call.legs, uid: replace(leg, bridge=event.bridge_id, up=True)})
    if call.answered_by is None and len(members) >= 2:
        call = answer_by_bridge(tx, call, members)
    tx.put(call)


def _on_bridge_leave(tx: Tx, event: ev.BridgeLeave) -> None:
    uid = event.channel.uniqueid
    linkedid = tx.linkedid_of(uid)
    call = tx.call(linkedid) if linkedid is not None else None
    unbridge(tx, event.bridge_id, uid)
    if call is None:
        return
    leg = call.legs.get(uid)
    if leg is not None and leg.bridge == event.bridge_id:
        tx.put(replace(call, legs={**call.legs, uid: replace(leg, bridge=None)}))


def _on_var_set(tx: Tx, event: ev.VarSet) -> None:
    call = attach(tx, event.channel)
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
    if variable == "CRMTEL_ORIGINATE_ID" and call.originate_id is None:
        tx.put(announce_click(tx, replace(call, originate_id=value[:64])))
    elif variable == "CRMTEL_ROUTE_KIND" and call.route_kind is None:
        tx.put(replace(call, route_kind=value[:20]))
    elif variable == "CRMTEL_ROUTE_TARGET" and call.route_target is None:
        tx.put(replace(call, route_target=value[:64]))
    elif variable == "CRMTEL_ROUTE_REASON" and call.route_reason is None:
        tx.put(replace(call, route_reason=value))


def _on_queue_join(tx: Tx, event: ev.QueueCallerJoin) -> None:
    call = attach(tx, event.channel)
    if call is not None:
        call, queued = visits.joined(tx.state.pbx, call, event.queue[:64], tx.at)
        tx.put(replace(call, queue=event.queue[:64], in_queue=True))
        if queued is not None:
            tx.emit(queued)


def _on_queue_leave(tx: Tx, event: ev.QueueCallerLeave) -> None:
    call = attach(tx, event.channel)
    if call is None:
        return
    changes: dict[str, Any] = {"in_queue": False}
    if call.answered_by is None and call.unanswered_reason is not MissedReason.ABANDONED_IN_QUEUE:
        changes["unanswered_reason"] = MissedReason.NO_ANSWER
    if call.answered_by is None:
        call = leave_queue(tx, call, QueueOutcome.EXITED)
        tx.put(call)
    if call.in_queue or changes.keys() - {"in_queue"}:
        tx.put(replace(call, **changes))


def _on_queue_abandon(tx: Tx, event: ev.QueueCallerAbandon) -> None:
    call = attach(tx, event.channel)
    if call is not None and call.answered_by is None:
        call = leave_queue(tx, call, QueueOutcome.ABANDONED)
        tx.put(
            replace(
                call,
                queue=event.queue[:64],
                in_queue=False,
                unanswered_reason=MissedReason.ABANDONED_IN_QUEUE,
            )
        )


def _on_agent_connect(tx: Tx, event: ev.AgentConnect) -> None:
    call = attach(tx, event.channel)
    if call is None or event.dest is None or call.answered_by is not None:
        return
    dest = leg_of(tx, event.dest)
    if dest.kind is LegKind.EXTENSION:
        tx.put(answer(tx, call, dest.extension))


def _on_blind_transfer(tx: Tx, event: ev.BlindTransfer) -> None:
    if event.result.lower() != "success":
        return
    party = event.transferee or event.transferer
    if party is None:
        return
    call = attach(tx, party)
    if call is not None and call.answered_by is not None:
        tx.put(replace(call, transfer_pending=True))


def _other_member(tx: Tx, bridge_id: str | None, exclude: ev.ChannelInfo | None) -> str | None:
    if bridge_id is None:
        return None
    skip = exclude.uniqueid if exclude is not None else None
    for uid in tx.bridge_members(bridge_id):
        if uid != skip:
            return uid
    return None


def _on_attended_transfer(tx: Tx, event: ev.AttendedTransfer) -> None:
    if event.result.lower() != "success":
        return
    transferee_uid = (
        event.transferee.uniqueid
        if event.transferee is not None
        else _other_member(tx, event.orig_bridge_id, event.orig_transferer)
    )
    if event.transfer_target is not None:
        target = leg_of(tx, event.transfer_target)
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
    tx.put(answer(tx, replace(call, transfer_pending=True), target.extension))


def _on_rename(tx: Tx, event: ev.Rename) -> None:
    lid = tx.linkedid_of(event.uniqueid)
    call = tx.call(lid) if lid is not None else None
    leg = call.legs.get(event.uniqueid) if call is not None else None
    if call is None or leg is None:
        return
    new = renamed(tx, leg, event.new_name)
    ringing = call.ringing
    was = ringing.get(event.uniqueid)
    if was is not None and was != new.extension:
        # Someone else took over this ringing line (call pickup): the offered phone stops ringing.
        ringing = {k: v for k, v in ringing.items() if k != event.uniqueid}
        tx.emit(CallRingStopped(tx.cid(call.linkedid), was, "answered elsewhere", new.extension, tx.at))
    tx.put(replace(call, legs={**call.legs, event.uniqueid: new}, ringing=ringing))


def _ignore(tx: Tx, event: Any) -> None:
    return None


_HANDLERS: dict[type[Any], Callable[[Tx, Any], None]] = {
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
    tx = Tx(state, event.at)
    handler(tx, event)
    return tx.finish()
