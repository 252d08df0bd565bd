"""When a call closes a callback task by itself (crmtel.tasks.rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmtel.tasks.rules import MISSED, PLANNED, CallFacts, TaskFacts, closes

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _call(start: timedelta, talk: float) -> CallFacts:
    return CallFacts(T0 + start, T0 + start + timedelta(seconds=talk + 5), talk)


def test_a_missed_call_task_closes_on_any_later_answered_call() -> None:
    """The old rule for missed calls: a two-second callback a minute later closes it."""
    task = TaskFacts(MISSED, T0, T0 + timedelta(minutes=30))
    assert closes(task, _call(timedelta(minutes=1), 2), 60)


def test_a_callback_planned_in_two_hours_survives_a_three_second_call_seven_seconds_later() -> None:
    """The issue's case: «через 120 минут», then a 3 s click-to-call 7 s later."""
    task = TaskFacts(PLANNED, T0, T0 + timedelta(minutes=120))
    assert not closes(task, _call(timedelta(seconds=7), 3), 60)


def test_callbacks_due_tomorrow_and_in_three_days_survive_a_short_call_today() -> None:
    """Neither is closed by a 40 s conversation today (minimum 60 s)."""
    for days in (1, 3):
        task = TaskFacts(PLANNED, T0, T0 + timedelta(days=days))
        assert not closes(task, _call(timedelta(hours=2), 40), 60)


def test_a_real_conversation_before_the_due_time_closes_a_planned_callback() -> None:
    """Answered and at least the minimum: the client was reached, the task is done."""
    task = TaskFacts(PLANNED, T0, T0 + timedelta(days=1))
    assert closes(task, _call(timedelta(hours=2), 60), 60)


def test_from_its_due_time_any_answered_call_closes_a_planned_callback() -> None:
    """A short call made when it was due counts."""
    task = TaskFacts(PLANNED, T0, T0 + timedelta(hours=1))
    assert closes(task, _call(timedelta(hours=1), 3), 60)


def test_the_call_in_progress_when_the_task_was_set_never_closes_it() -> None:
    """A callback set on the card during a long conversation is about the next call."""
    task = TaskFacts(PLANNED, T0, T0 + timedelta(hours=1))
    call = CallFacts(T0 - timedelta(minutes=5), T0 + timedelta(minutes=2), 420)
    assert not closes(task, call, 60)
