"""Where every live call stands now, as the live events that brought it there (pure).

After crmtel restarts, the tracker learns its live calls again from the store (``sync.restore``) and the
PBX's channel list (``sync.resync``) without replaying their events, so nothing downstream (the managers'
pages, the heads' board) would hear of them. ``live_now`` says it again: a call's ringing phones, the phone
that placed or answered it with its PBX answer time, and a caller waiting in a queue. Receivers that fold
events in (``push.live.LiveCalls``, the board) treat a repeat of what they already know as no change.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from crmtel.calls.tracker import visits
from crmtel.calls.tracker.model import Call, TrackerState
from crmtel.domain import CallAnswered, CallEvent, CallRinging, Direction, call_id


def live_now(
    state: TrackerState, at: datetime, linkedids: Collection[str] | None = None
) -> tuple[CallEvent, ...]:
    """The live events that bring a receiver knowing nothing to where each of ``state``'s calls (or only
    those of ``linkedids``) stands."""
    out: list[CallEvent] = []
    calls = (
        state.calls.values() if linkedids is None else [state.calls[i] for i in linkedids if i in state.calls]
    )
    for call in sorted(calls, key=lambda c: c.started_at):
        out.extend(_call_now(state.pbx, call, at))
    return tuple(out)


def _call_now(pbx: str, call: Call, at: datetime) -> list[CallEvent]:
    cid = call_id(pbx, call.linkedid)
    out: list[CallEvent] = []
    queued = visits.waiting(pbx, call, at)
    if queued is not None:
        out.append(queued)
    phones: list[str] = []
    if call.direction is Direction.OUTBOUND:
        # The placing phone's own card goes out once the call dials out (``core.announce_outbound``).
        if call.announced and call.placed_by is not None:
            phones.append(call.placed_by)
    elif call.answered_by is None:
        # Phones offered the call after someone took it (a transfer) ring on no page: the taker's card tells.
        phones.extend(call.ringing.values())
    if call.answered_by is not None:
        phones.append(call.answered_by)
    for extension in dict.fromkeys(phones):
        out.append(
            CallRinging(
                call_id=cid,
                pbx=pbx,
                linkedid=call.linkedid,
                extension=extension,
                direction=call.direction or Direction.INTERNAL,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                dialled=call.dialled,
                queue=call.queue,
                # When its phone started ringing is not kept: the call's start is the closest fact.
                at=call.started_at,
                originate_id=call.originate_id if extension == call.placed_by else None,
            )
        )
    if call.answered_by is not None:
        out.append(CallAnswered(cid, call.answered_by, call.answered_at or at))
    return out
