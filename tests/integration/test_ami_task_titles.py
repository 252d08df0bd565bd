"""Callback tasks made from missed calls are titled in the configured language (they are read on the page)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmtel.callbacks.service import EndedCall, book_ended_calls
from crmtel.calls.commands import replay_stream
from crmtel.config import CallsSettings, I18nSettings, Settings
from crmtel.fakepbx.server import load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.tasks import TaskRepository
from tests.fixtures.call_records import call_record


@pytest.mark.parametrize(
    ("language", "title"),
    [("ru", "Перезвонить: Ivan Petrov, пропущенный звонок"), ("en", "Call back Ivan Petrov: missed call")],
)
async def test_missed_call_task_title_follows_i18n_language(
    db: Database, traces_dir: Path, language: str, title: str
) -> None:
    """i18n.language ru (the default) or en decides the stored title of a missed call's task."""
    await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    settings = Settings(
        database_url=db.url,
        calls=CallsSettings(default_owner="anna"),
        i18n=I18nSettings.model_validate({"language": language}),
    )
    await replay_stream(settings, db, load_ami(traces_dir / "direct-caller-gives-up.ami"), settle=0.05)
    assert [t.title for t in await TaskRepository(db).open_tasks()] == [title]


async def test_a_nameless_callers_task_is_titled_with_the_number_as_people_write_it(db: Database) -> None:
    """A missed call from a number with no name and no CRM party: «+7 903 846-45-06» in the title, as on the page,
    not «+79038464506»."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    record = call_record("nameless", "+79038464506", at, ring=20, talk=None)
    ids = await CallRepository(db).upsert_many([(record, None)])
    async with db.session() as session:
        await book_ended_calls(
            session, [EndedCall(record, ids[("pbx1", "nameless")], None)], CallsSettings(), 10, title=str
        )
    assert [t.title for t in await TaskRepository(db).open_tasks()] == ["+7 903 846-45-06"]
