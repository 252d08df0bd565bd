"""Callback tasks made from missed calls are titled in the configured language (they are read on the page)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmtel.calls.commands import replay_stream
from crmtel.config import CallsSettings, I18nSettings, Settings
from crmtel.fakepbx.server import load_ami
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.tasks import TaskRepository


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
