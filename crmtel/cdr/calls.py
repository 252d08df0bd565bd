"""From a call's CDR legs to its call record (pure: no I/O), with the tracker's own rules and types.

A call is the legs sharing a Linkedid. Its originating leg (Uniqueid == Linkedid) says who called and
what was dialled; each leg's destination channel is one offer (``Local/…;1`` is followed to the phone its
``;2`` half dialled, as the tracker ignores ``Local/`` halves); the first offer answered by a phone says who
answered; ring and talk come from the CDR's times (start of the call, answer of that leg, end of the
last leg). The record is built by the tracker's ``build_record``, so direction, numbers and extras follow
exactly the conventions of a call followed live. A click-to-call "via my mobile" (``Local/<ext>@…;1`` whose
``;2`` half dialled the trunk) is ``<ext>``'s, answered on the number that half dialled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from crmtel.calls.legs import LegKind, dialled_number, forwarded_taker, local_base, number_from_dial_string
from crmtel.calls.tracker import visits
from crmtel.calls.tracker.model import Call, TrackerState, build_record, leg_kind, normalise_caller
from crmtel.cdr.models import CdrRow
from crmtel.cdr.spans import placed
from crmtel.domain import CallRecord, Direction, MissedReason, QueueOutcome
from crmtel.phones import PhoneKind, normalize

_CLID = re.compile(r'^\s*"(?P<name>.*)"\s*<(?P<num>[^>]*)>\s*$', re.DOTALL)
_AUDIO = re.compile(r"\.(wav|wav49|gsm|mp3|ogg|opus|sln\d*|g722|ulaw|alaw)$", re.IGNORECASE)
# What a CDR names as the last application of a channel that was dialled and never ran the dialplan itself
# (an Originate's phone that did not answer: ``AppDial2``, ``(Outgoing Line)``).
_DIALLED_APPS = frozenset({"appdial", "appdial2"})
_UNANSWERED = {
    "BUSY": MissedReason.BUSY,
    "FAILED": MissedReason.NO_ANSWER,
    "CONGESTION": MissedReason.NO_ANSWER,
}


def _order(row: CdrRow) -> tuple[datetime, int]:
    return row.start, row.sequence if row.sequence is not None else 0


def group_calls(rows: Iterable[CdrRow]) -> dict[str, list[CdrRow]]:
    """The legs of each call by Linkedid, in start order.

    Without a linkedid column (``cdr_csv`` without ``newcdrcolumns``) a leg is keyed by its own Uniqueid;
    the legs of a ``Local/…;2`` half are then joined to the call whose leg dialled its ``;1`` half.
    """
    calls: dict[str, list[CdrRow]] = {}
    orphans: list[CdrRow] = []
    for row in rows:
        if not row.has_linkedid and local_base(row.channel) is not None and row.channel.endswith(";2"):
            orphans.append(row)
            continue
        calls.setdefault(row.linkedid, []).append(row)
    if orphans:
        owner = {
            local_base(leg.dstchannel): key
            for key, legs in calls.items()
            for leg in legs
            if local_base(leg.dstchannel) is not None
        }
        for row in orphans:
            key = owner.get(local_base(row.channel), row.linkedid)
            calls.setdefault(key, []).append(row)
    for legs in calls.values():
        legs.sort(key=_order)
    return calls


@dataclass(frozen=True, slots=True)
class _Offer:
    """One phone (or line) the call was offered to, through the leg that reached it.

    ``via`` is the caller's own leg that made the offer (for a ``Local/`` member, the leg that dialled its
    ``;1`` half, while ``leg`` is the ``;2`` half's leg to the phone).
    """

    kind: LegKind
    extension: str | None
    leg: CdrRow
    via: CdrRow


def _is_half(leg: CdrRow) -> bool:
    return local_base(leg.channel) is not None and leg.channel.endswith(";2")


def _offers(legs: Sequence[CdrRow], state: TrackerState) -> list[_Offer]:
    halves: dict[str, list[CdrRow]] = {}
    for leg in legs:
        base = local_base(leg.channel)
        if base is not None and _is_half(leg):
            halves.setdefault(base, []).append(leg)
    out: list[_Offer] = []
    for leg in legs:
        if _is_half(leg) or not leg.dstchannel:
            continue
        kind, extension = leg_kind(state, leg.dstchannel)
        if kind is LegKind.LOCAL:
            for half in halves.get(local_base(leg.dstchannel) or "", []):
                if half.dstchannel:
                    inner, ext = leg_kind(state, half.dstchannel)
                    out.append(_Offer(inner, ext, half, leg))
            continue
        out.append(_Offer(kind, extension, leg, leg))
    return out


def caller_id(clid: str) -> tuple[str | None, str | None]:
    """``"Ivan Petrov" <79161110001>`` -> (name, number); empty or ``<unknown>`` parts are None."""
    match = _CLID.match(clid)
    if match is None:
        text = clid.strip()
        return None, (text or None)
    name, num = match.group("name").strip(), match.group("num").strip()
    return (name if name and name != "<unknown>" else None), (num or None)


def recording_of(legs: Sequence[CdrRow]) -> str | None:
    """FreePBX's ``recordingfile``, else a ``userfield`` that names an audio file (set from the dialplan)."""
    for leg in legs:
        if leg.recordingfile:
            return leg.recordingfile[:500]
    for leg in legs:
        if leg.userfield and _AUDIO.search(leg.userfield.strip()):
            return leg.userfield.strip()[:500]
    return None


def _timeout(lastdata: str, position: int) -> int | None:
    parts = lastdata.split(",")
    if len(parts) <= position:
        return None
    value = parts[position].strip()
    return int(value) if value.isdigit() else None


def _queue_timed_out(leg: CdrRow) -> bool:
    limit = _timeout(leg.lastdata, 4)
    return limit is not None and leg.duration >= limit


def missed_reason(legs: Sequence[CdrRow], offers: Sequence[_Offer]) -> MissedReason:
    """Why nobody answered, from the last thing the caller's leg did (Dial or Queue) and how it ended."""
    main = [leg for leg in legs if not _is_half(leg)] or list(legs)
    last = main[-1]
    app = last.lastapp.lower()
    if app == "queue":
        if _queue_timed_out(last):
            return MissedReason.NO_ANSWER
        return MissedReason.ABANDONED_IN_QUEUE
    reason = _UNANSWERED.get(last.disposition)
    if reason is not None:
        return reason
    if offers and app == "dial":
        limit = _timeout(last.lastdata, 1)
        if limit is None or last.duration < limit:
            return MissedReason.CALLER_HUNG_UP_RINGING
    return MissedReason.NO_ANSWER


def _queue_of(leg: CdrRow) -> str | None:
    if leg.lastapp.lower() != "queue":
        return None
    return leg.lastdata.split(",", 1)[0].strip()[:64] or None


def with_queue_visits(pbx: str, call: Call, legs: Sequence[CdrRow], offers: Sequence[_Offer]) -> Call:
    """The caller's waits in queues, kept by the tracker's own visit rules (``tracker.visits``).

    Each run of the caller's legs in one queue is one wait: joined when its first leg began, offered to the
    phones its legs rang (a ``Local/`` member by its phone), answered by the first of them to answer, else
    exited (the queue timed out, or the dialplan went on after it) or abandoned (the caller hung up).
    """
    main = [leg for leg in legs if not _is_half(leg)]
    runs: list[tuple[str, list[CdrRow]]] = []
    previous: str | None = None
    for leg in main:
        queue = _queue_of(leg)
        if queue is not None and queue == previous:
            runs[-1][1].append(leg)
        elif queue is not None:
            runs.append((queue, [leg]))
        previous = queue
    for queue, run in runs:
        call, _ = visits.joined(pbx, call, queue, min(placed(leg).start for leg in run))
        mine = {id(leg) for leg in run}
        members = [o for o in offers if id(o.via) in mine and o.kind is LegKind.EXTENSION and o.extension]
        for offer in members:
            call = visits.offered(call, offer.extension or "")
        answered = [o for o in members if o.leg.disposition == "ANSWERED" and o.leg.answer is not None]
        if answered:
            first = min(answered, key=lambda o: (o.leg.answer or o.leg.start, _order(o.leg)))
            call, _ = visits.left(
                pbx, call, QueueOutcome.ANSWERED, placed(first.leg).answer_or_start, first.extension
            )
            continue
        went_on = run[-1] is not main[-1]
        timed_out = any(_queue_timed_out(leg) for leg in run)
        outcome = QueueOutcome.EXITED if went_on or timed_out else QueueOutcome.ABANDONED
        call, _ = visits.left(pbx, call, outcome, max(placed(leg).end for leg in run))
    return call


def never_a_call(origin: CdrRow, legs: Sequence[CdrRow], offers: Sequence[_Offer]) -> bool:
    """A failed Originate (click-to-call on a busy, unanswered or declining phone): the placing phone never
    answered, so its channel never ran the dialplan and reached nobody; the tracker stores no call for it."""
    if origin.lastapp.lower() not in _DIALLED_APPS or offers:
        return False
    return all(leg.answer is None for leg in legs)


def call_from_legs(state: TrackerState, linkedid: str, legs: Sequence[CdrRow]) -> CallRecord | None:
    """The final record of one call from its CDR legs (None when there are no legs, or they were never a call)."""
    if not legs:
        return None
    legs = sorted(legs, key=_order)
    origin = next((leg for leg in legs if leg.uniqueid and leg.uniqueid == linkedid), None)
    if origin is None:
        origin = next((leg for leg in legs if local_base(leg.channel) is None), legs[0])
    origin_kind, origin_ext = leg_kind(state, origin.channel)
    offers = _offers(legs, state)
    via_mobile: tuple[str, str | None] | None = None
    if never_a_call(origin, legs, offers):
        return None
    name, number = caller_id(origin.clid)
    name = origin.cnam or name
    raw_number = origin.src or number
    call = Call(
        linkedid=linkedid,
        started_at=min(placed(leg).start for leg in legs),
        caller_name=name,
        origin_kind=origin_kind,
    )
    if origin_kind is LegKind.TRUNK:
        caller, hidden = normalise_caller(raw_number, state.region)
        call = replace(
            call,
            direction=Direction.INBOUND,
            caller_raw=raw_number,
            caller_number=caller,
            caller_hidden=hidden,
        )
        # After a blind transfer the caller's channel ran the dialplan again, and the PBX rewrote every one of its
        # rows' dst to the transfer target: the DID is then only in a did column (FreePBX), never the dst.
        dialled = dialled_number(origin.did) or (
            None if _dst_is_a_transfer_target(origin, legs) else dialled_number(origin.dst)
        )
    else:
        via_mobile = _placing_mobile(state, origin, legs)
        placed_by = (
            origin_ext
            or (via_mobile[0] if via_mobile is not None else None)
            or next((o.extension for o in offers if o.kind is LegKind.EXTENSION), None)
        )
        to_trunk = any(o.kind is LegKind.TRUNK for o in offers)
        dialled = dialled_number(origin.dst)
        internal = not to_trunk and (
            dialled is None or normalize(dialled, state.region).kind is PhoneKind.EXTENSION
        )
        call = replace(
            call,
            direction=Direction.INTERNAL if internal else Direction.OUTBOUND,
            caller_raw=raw_number,
            caller_number=placed_by,
            placed_by=placed_by,
        )
    if dialled is not None:
        call = replace(call, dialled=dialled, dialled_e164=normalize(dialled, state.region).e164)
    rang: list[str] = []
    for offer in offers:
        if offer.kind is LegKind.EXTENSION and offer.extension and offer.extension not in rang:
            rang.append(offer.extension)
    call = with_queue_visits(state.pbx, call, legs, offers)
    # The queue the caller waited in last, as the tracker keeps it.
    queue = call.queue_visits[-1].queue if call.queue_visits else None
    call = replace(call, rang=tuple(rang), queue=queue, recording_file=recording_of(legs))
    answered = [
        o
        for o in offers
        if o.leg.disposition == "ANSWERED"
        and o.leg.answer is not None
        and (
            o.kind is LegKind.EXTENSION
            if call.direction is not Direction.OUTBOUND
            else o.kind is LegKind.TRUNK
        )
    ]
    if answered:
        first = min(answered, key=lambda o: (o.leg.answer or o.leg.start, _order(o.leg)))
        who = first.extension if call.direction is not Direction.OUTBOUND else call.placed_by
        call = replace(call, answered_by=who, answered_at=placed(first.leg).answer)
        if call.direction is Direction.OUTBOUND and via_mobile is not None:
            call = replace(call, answered_on=via_mobile[1])
        if call.direction is not Direction.OUTBOUND:
            call = _transferred(call, origin, answered, first)
        call = _transferred_out(state, call, offers, first)
    elif (
        call.direction is Direction.INBOUND
        and (mobile := _answered_outside(offers)) is not None
        and forwarded_taker(call.rang, None) is not None
    ):
        call = _forwarded(state, call, mobile)
    else:
        call = replace(call, unanswered_reason=missed_reason(legs, offers))
    return build_record(state, call, ended_at=max(placed(leg).end for leg in legs))


def _transferred(call: Call, origin: CdrRow, answered: Sequence[_Offer], first: _Offer) -> Call:
    """After a blind or attended transfer the caller's channel dialled the phone that took over (directly, or
    through a ``Local/`` consultation): the last phone the caller's own legs reached answers the call."""
    own = [o for o in answered if o.via.channel == origin.channel and o.extension is not None]
    if not own:
        return call
    last = max(own, key=lambda o: (_order(o.via), o.leg.answer or o.leg.start))
    if last.extension == first.extension or _order(last.via) <= _order(first.via):
        return call
    return replace(call, answered_by=last.extension, transferred_from=first.extension)


def _dst_is_a_transfer_target(origin: CdrRow, legs: Sequence[CdrRow]) -> bool:
    """Whether the caller's rows' dst is where a blind transfer sent the call: after one of its legs was answered,
    the caller's channel dialled that very number (the transferee went back to the dialplan at the target's
    extension, and the PBX rewrote the dst of every row of that channel). An attended transfer's later row stays in
    the caller's Queue or Dial, dialling no such number."""
    dst = dialled_number(origin.dst)
    own = [leg for leg in legs if leg.channel == origin.channel]
    answers = [placed(leg).answer for leg in own if leg.disposition == "ANSWERED" and leg.answer is not None]
    if dst is None or not answers:
        return False
    first = min(a for a in answers if a is not None)
    return any(
        placed(leg).start > first and number_from_dial_string(leg.lastdata.split(",", 1)[0]) == dst
        for leg in own
    )


def _transferred_out(state: TrackerState, call: Call, offers: Sequence[_Offer], first: _Offer) -> Call:
    """A call blind-transferred through the trunk and answered there (the tracker's ``transferred_out``): its
    answerer keeps it, and the record notes the number the transfer dialled out (E.164 when it is one)."""
    later = [
        o
        for o in offers
        if o is not first
        and o.kind is LegKind.TRUNK
        and o.leg.disposition == "ANSWERED"
        and o.leg.answer is not None
        and _order(o.via) > _order(first.via)
    ]
    if not later:
        return call
    last = max(later, key=lambda o: (_order(o.via), o.leg.answer or o.leg.start))
    # A blind transfer's signature: the transferee went back to the dialplan at the target, so the row's dst is the
    # number it then dialled (a dialplan that merely goes on after the call dials something else).
    target = dialled_number(last.via.dst)
    if target is None or number_from_dial_string(last.leg.lastdata.split(",", 1)[0]) != target:
        return call
    number = _number_dialled_out(state, last.leg)
    return replace(call, transferred_to=number) if number is not None else call


def _answered_outside(offers: Sequence[_Offer]) -> _Offer | None:
    """The first line to the outside world that answered (a forward or follow-me to a mobile)."""
    outside = [
        o
        for o in offers
        if o.kind is LegKind.TRUNK and o.leg.disposition == "ANSWERED" and o.leg.answer is not None
    ]
    return min(outside, key=lambda o: (o.leg.answer or o.leg.start, _order(o.leg))) if outside else None


def _forwarded(state: TrackerState, call: Call, mobile: _Offer) -> Call:
    """An inbound call answered on a mobile through the trunk: by the manager whose phone rang last (the CDR
    does not keep a phone's ``Forward``), the record noting the number (``crmtel.calls.legs.forwarded_taker``)."""
    taker = forwarded_taker(call.rang, None)
    answered_on = _number_dialled_out(state, mobile.leg)
    return replace(call, answered_by=taker, answered_at=placed(mobile.leg).answer, answered_on=answered_on)


def _number_dialled_out(state: TrackerState, leg: CdrRow) -> str | None:
    """The number a leg to the trunk dialled, E.164 when it is one (a dialplan follow-me's row, and the ``;2`` half
    of a click-to-call via the mobile, keep another number as their dst: the Dial string names it)."""
    dial = leg.lastdata.split(",", 1)[0]
    number = (number_from_dial_string(dial) if "@" in dial else None) or dialled_number(leg.dst)
    return (normalize(number, state.region).e164 or number) if number is not None else None


def _placing_mobile(
    state: TrackerState, origin: CdrRow, legs: Sequence[CdrRow]
) -> tuple[str, str | None] | None:
    """Click-to-call "via my mobile" (``Originate(Local/<ext>@crmtel-mobile)``): the caller's own ``Local/`` half
    dials the client while its ``;2`` half dialled the manager's mobile through the trunk first. The CDR keeps no
    ``CRMTEL_MANAGER_EXTENSION``/``CRMTEL_MOBILE_NUMBER``: the manager is the Local channel's extension, the mobile
    the number the ``;2`` half's Dial dialled. None for any other call (a FreePBX click-to-call's ``;2`` half
    rings the manager's desk phone, an extension)."""
    base = local_base(origin.channel)
    if base is None or not origin.channel.endswith(";1"):
        return None
    extension = base.partition("/")[2].partition("@")[0]
    if normalize(extension, state.region).kind is not PhoneKind.EXTENSION:
        return None
    half = next(
        (
            leg
            for leg in legs
            if _is_half(leg)
            and local_base(leg.channel) == base
            and leg.dstchannel
            and leg_kind(state, leg.dstchannel)[0] is LegKind.TRUNK
        ),
        None,
    )
    if half is None:
        return None
    return extension, _number_dialled_out(state, half)
