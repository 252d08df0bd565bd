"""Dialling: who a call rings (``DialBegin``) and how each ring ends (``DialEnd``)."""

from __future__ import annotations

from dataclasses import replace

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind, dialled_number, forwarded_taker, local_base, number_from_dial_string
from crmtel.calls.reasons import DIAL_STOP_REASON, StopReason
from crmtel.calls.tracker import visits
from crmtel.calls.tracker.core import (
    UNANSWERED,
    announce_outbound,
    answer,
    attach,
    leg_of,
    origin_extension,
    set_dialled,
)
from crmtel.calls.tracker.model import Call, Leg
from crmtel.calls.tracker.tx import Tx
from crmtel.domain import CallRinging, CallRingStopped, Direction, MissedReason
from crmtel.phones import normalize


def on_dial_begin(tx: Tx, event: ev.DialBegin) -> None:
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
    if (
        call.via_mobile is not None
        and call.mobile_leg is None
        and call.direction is None
        and dest.kind is LegKind.TRUNK
    ):
        # "Via my mobile": the placing manager's own mobile rings first (through the trunk); not the client yet.
        tx.put(replace(call, mobile_leg=event.dest.uniqueid))
        return
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
    if dest.kind is LegKind.TRUNK:
        # Dialling out (from the desk phone, or a click-to-call once the placing phone answered): the card.
        call = announce_outbound(tx, call)
    if dest.kind is LegKind.TRUNK and (call.direction is not Direction.OUTBOUND or call.transfer_pending):
        # An inbound call dialled out again (forwarding, follow-me), or any call blind-transferred to an outside
        # number: the number, should it answer there.
        number = number_from_dial_string(event.dial_string) or dialled_number(event.dest.exten)
        if number is not None:
            call = replace(call, outside_number=number)
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


def on_dial_end(tx: Tx, event: ev.DialEnd) -> None:
    if event.channel is not None:
        attach(tx, event.channel)
    call = attach(tx, event.dest)
    if call is None:
        return
    dest = leg_of(tx, event.dest)
    uid = event.dest.uniqueid
    status = event.status
    placer = call.direction is None and dest.extension is not None and dest.extension == call.placed_by
    if uid == call.linkedid or placer or uid == call.mobile_leg:
        # The placing phone (or the placing manager's mobile) answered or refused its own Originate: not the far
        # end, whenever this DialEnd is reported.
        if status != "ANSWER" and call.answered_by is None:
            tx.put(replace(call, unanswered_reason=UNANSWERED.get(status, MissedReason.NO_ANSWER)))
        return
    if status == "ANSWER":
        if uid in call.ringing:
            call = replace(call, ringing={k: v for k, v in call.ringing.items() if k != uid})
        if (
            dest.kind is LegKind.TRUNK
            and call.transfer_pending
            and call.answered_by is not None
            and _dialled_the_target(tx, call)
        ):
            # A blind transfer to an outside number answered there: still the call of the manager who answered.
            call = transferred_out(tx, call)
        elif dest.kind is LegKind.EXTENSION:
            call = answer(tx, call, dest.extension)
        elif dest.kind is LegKind.TRUNK and call.direction is Direction.OUTBOUND:
            call = answer(tx, call, origin_extension(call))
            if call.via_mobile is not None and call.answered_on is None:
                call = replace(call, answered_on=call.via_mobile)
        elif (
            dest.kind is LegKind.TRUNK
            and call.direction is Direction.INBOUND
            and call.answered_by is None
            # With a confirmation step (follow-me) the mobile answering is not the manager taking the call yet.
            and not call.confirm_pending
        ):
            call = answered_on_the_mobile(tx, call)
        tx.put(call)
        return
    if event.forward and dest.kind is LegKind.EXTENSION and dest.extension is not None:
        # The phone sent the call on (302, call forwarding): to this manager's mobile, as far as we know.
        forwarded_to = dialled_number(event.forward) or event.forward[:64]
        call = replace(call, forwarded_by=dest.extension, forwarded_to=forwarded_to)
    extension = call.ringing.get(uid)
    if extension is not None:
        call = replace(call, ringing={k: v for k, v in call.ringing.items() if k != uid})
    # The same user's other device still rings, or took the call: that card stays as it is.
    if extension is not None and (extension in call.ringing.values() or extension == call.answered_by):
        extension = None
    if extension is not None:
        if event.forward:
            reason = StopReason.FORWARDED
        elif status == "CANCEL":
            reason = StopReason.ANSWERED_ELSEWHERE if call.answered_by is not None else StopReason.CANCELLED
        else:
            reason = DIAL_STOP_REASON.get(status, StopReason.UNAVAILABLE)
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


def answered_on_the_mobile(tx: Tx, call: Call) -> Call:
    """An inbound call answered out through the trunk: by the manager whose phone sent it there."""
    taker = forwarded_taker(call.rang, call.forwarded_by)
    if taker is None:
        return call
    number = call.outside_number or call.forwarded_to
    call = answer(tx, call, taker)
    if number is None:
        return call
    e164 = normalize(number, tx.state.region).e164
    return replace(call, answered_on=e164 or number)


def transferred_out(tx: Tx, call: Call) -> Call:
    """A call blind-transferred through the trunk and answered there: the manager who answered it keeps it (no
    new answer, no new owner), and the record notes the outside number (E.164 when it is one)."""
    number = call.outside_number
    e164 = normalize(number, tx.state.region).e164 if number is not None else None
    return replace(call, transfer_pending=False, transferred_to=e164 or number)


def _dialled_the_target(tx: Tx, call: Call) -> bool:
    """Whether the trunk leg dialled the number the blind transfer sent the call to (as the CDR path's rule: the
    transferee went back to the dialplan at the target and dialled it), not another number — a colleague the call
    was transferred to whose phone forwards it to their mobile. Unknown target (no extension in the event): yes."""
    target, number = call.transfer_target, call.outside_number
    if target is None:
        return True
    if number is None:
        return False
    if target == number:
        return True
    wanted = normalize(target, tx.state.region).e164
    return wanted is not None and wanted == normalize(number, tx.state.region).e164
