"""Channel life: new channels and their caller ID, hangups, renames (pickup) and channel variables."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind
from crmtel.calls.reasons import HANGUP_STOP_REASON, StopReason
from crmtel.calls.tracker.core import (
    announce_outbound,
    attach,
    end_call,
    leave_queue,
    renamed,
    unbridge,
)
from crmtel.calls.tracker.dialling import answered_on_the_mobile
from crmtel.calls.tracker.model import Call, normalise_caller
from crmtel.calls.tracker.tx import Tx
from crmtel.domain import CallRingStopped, Direction, MissedReason, QueueOutcome


def on_channel(tx: Tx, event: Any) -> None:
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
        # A call a manager placed (click-to-call through a Local channel) is the manager's extension calling,
        # whatever caller ID the dialplan then shows the called party (the company's number).
        and call.placed_by is None
        # Once answered, who called is settled: a caller ID set later is what the dialplan shows someone the call
        # is sent on to (a blind transfer out through [crmtel-webphone] sets the company's number).
        and call.answered_by is None
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


def on_hangup(tx: Tx, event: ev.Hangup) -> None:
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
        reason = HANGUP_STOP_REASON.get(event.cause or 0, StopReason.HUNG_UP)
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


def on_rename(tx: Tx, event: ev.Rename) -> None:
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
        tx.emit(
            CallRingStopped(tx.cid(call.linkedid), was, StopReason.ANSWERED_ELSEWHERE, new.extension, tx.at)
        )
    tx.put(replace(call, legs={**call.legs, event.uniqueid: new}, ringing=ringing))


def _placed_via_mobile(call: Call) -> Call:
    """ "Via my mobile": the Local channel's other half rings the manager's mobile first; the manager places the
    call. Asterisk sets an Originate's variables in no promised order, so either variable may come last."""
    if call.via_mobile is None or call.originate_extension is None or call.placed_by is not None:
        return call
    return replace(call, placed_by=call.originate_extension, caller_number=call.originate_extension)


def on_var_set(tx: Tx, event: ev.VarSet) -> None:
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
        tx.put(announce_outbound(tx, replace(call, originate_id=value[:64])))
    elif variable == "CRMTEL_MANAGER_EXTENSION" and call.originate_extension is None:
        tx.put(_placed_via_mobile(replace(call, originate_extension=value[:16])))
    elif variable == "CRMTEL_MOBILE_NUMBER" and call.via_mobile is None and call.origin_kind is LegKind.LOCAL:
        tx.put(_placed_via_mobile(replace(call, via_mobile=value[:32])))
    elif variable == "CRMTEL_FOLLOWME_TO" and call.direction is Direction.INBOUND:
        tx.put(replace(call, confirm_pending=bool(value)))
    elif variable == "CRMTEL_MOBILE_CONFIRMED" and call.confirm_pending and call.answered_by is None:
        # The manager pressed 1 on the mobile the inbound call followed them to: now it is theirs.
        tx.put(answered_on_the_mobile(tx, replace(call, confirm_pending=False)))
    elif variable == "CRMTEL_ROUTE_KIND" and call.route_kind is None:
        tx.put(replace(call, route_kind=value[:20]))
    elif variable == "CRMTEL_ROUTE_TARGET" and call.route_target is None:
        tx.put(replace(call, route_target=value[:64]))
    elif variable == "CRMTEL_ROUTE_REASON" and call.route_reason is None:
        tx.put(replace(call, route_reason=value))
