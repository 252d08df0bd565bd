"""When a call closes a callback task by itself (pure; the store applies it to the open tasks of a number).

- A call that began before the task existed never closes it: a callback set on the card during a
  conversation is about the *next* call, not the one in progress.
- A task opened by a missed call closes on the first later answered call to or from its number.
- A task a person planned (``source`` planned) for later is closed by a call made before it was due only
  when that call was answered and lasted at least ``min_talk_seconds``: a three-second "not now" or a
  call that never got through leaves tomorrow's callback where it is. From its due time on, any answered
  call closes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MISSED = "missed"
PLANNED = "planned"


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What the rule needs to know about an open task."""

    source: str
    created_at: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the rule needs to know about an answered call with the task's number."""

    started_at: datetime
    ended_at: datetime
    talk_seconds: float


def closes(task: TaskFacts, call: CallFacts, min_talk_seconds: float) -> bool:
    """Whether ``call`` (answered, same number) closes ``task`` (see the module docstring)."""
    if task.source != PLANNED:
        return task.created_at <= call.ended_at
    if call.started_at < task.created_at:
        return False
    if call.started_at >= task.due_at:
        return True
    return call.talk_seconds >= min_talk_seconds
