"""Queue events: a caller joins, leaves or abandons a queue; a member connects."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind
from crmtel.calls.tracker import visits
from crmtel.calls.tracker.core import answer, attach, leave_queue, leg_of
from crmtel.calls.tracker.tx import Tx
from crmtel.domain import MissedReason, QueueOutcome


def on_queue_join(tx: Tx, event: ev.QueueCallerJoin) -> None:
    call = attach(tx, event.channel)
    if call is not None:
        call, queued = visits.joined(tx.state.pbx, call, event.queue[:64], tx.at)
        tx.put(replace(call, queue=event.queue[:64], in_queue=True))
        if queued is not None:
            tx.emit(queued)


def on_queue_leave(tx: Tx, event: ev.QueueCallerLeave) -> None:
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


def on_queue_abandon(tx: Tx, event: ev.QueueCallerAbandon) -> None:
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


def on_agent_connect(tx: Tx, event: ev.AgentConnect) -> None:
    call = attach(tx, event.channel)
    if call is None or event.dest is None or call.answered_by is not None:
        return
    dest = leg_of(tx, event.dest)
    if dest.kind is LegKind.EXTENSION:
        tx.put(answer(tx, call, dest.extension))
