"""The call service reads the managers' extensions from the store: with the browser phone on, a desk phone 9913
of one manager is that manager's phone, not extension 13's browser device 99<ext>."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from crmtel.calls.extensions import KnownExtensions
from crmtel.calls.setup import build_call_service
from crmtel.config import Settings, WebphoneSettings
from crmtel.domain import Manager
from crmtel.errors import StoreUnavailable
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.freepbx import rename
from tests.fixtures.traces import load_expected, load_messages


async def _answered_by(db: Database, database_url: str) -> str | None:
    settings = Settings(
        database_url=database_url,
        webphone=WebphoneSettings(enabled=True, ws_url="wss://pbx.example.com:8089/ws", reload=False),
    )
    calls = build_call_service(settings, db, settings.pbxes)
    pbx = settings.pbxes[0].name
    await calls.restore(pbx)
    start = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    for item in rename(load_messages("direct-answered"), "PJSIP/101-", "PJSIP/9913-"):
        await calls.on_event(pbx, item.message, start + timedelta(seconds=item.t))
    await calls.flush()
    await calls.aclose()
    stored = await CallRepository(db).get(pbx, load_expected("direct-answered")["linkedid"])
    assert stored is not None
    return stored.record.answered_by


async def test_a_desk_phone_numbered_99_ext_is_its_own_manager_s(db: Database, database_url: str) -> None:
    """petr's desk phone 9913 answering is petr's call (answered_by 9913), not ivan's (extension 13)."""
    managers = ManagerRepository(db)
    await managers.save(login="ivan", name="Иван", extensions=("13",))
    await managers.save(login="petr", name="Пётр", extensions=("9913",))
    assert await _answered_by(db, database_url) == "9913"


async def test_a_device_99_ext_nobody_has_is_the_browser_phone(db: Database, database_url: str) -> None:
    """Without a manager on 9913, the same channel is ivan's browser phone and counts as extension 13."""
    await ManagerRepository(db).save(login="ivan", name="Иван", extensions=("13",))
    assert await _answered_by(db, database_url) == "13"


class _DownOnce(ManagerRepository):
    """The managers' store, down for its first read (an outage while a change is being learnt)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.failures = 0

    async def all(self) -> list[Manager]:
        if self.failures == 0:
            self.failures += 1
            raise StoreUnavailable("database unreachable: test")
        return await super().all()


async def test_a_manager_saved_while_running_is_learnt_even_through_a_store_outage(db: Database) -> None:
    """A manager saved through the store while the service runs reaches its classifier (its commit is told
    to the service); a read the store refuses is tried again, not dropped."""
    managers = ManagerRepository(db)
    await managers.save(login="ivan", name="Иван", extensions=("13",))
    known = KnownExtensions(db)
    db.on_change(known.changed)
    try:
        assert await known.load() == {"13"}
        down = _DownOnce(db)
        known._repo = down
        await managers.save(login="petr", name="Пётр", extensions=("9913",))
        await asyncio.wait_for(known.settled(), 10)
        assert down.failures == 1
        assert known.current == {"13", "9913"}
        # A renumbered manager: the old extension is forgotten too.
        await managers.save(login="petr", name="Пётр", extensions=("14",))
        await asyncio.wait_for(known.settled(), 10)
        assert known.current == {"13", "14"}
    finally:
        await known.aclose()


async def test_a_change_after_the_service_closed_starts_no_reread(db: Database) -> None:
    """The stop's last commits come after the call service closed: they leave no task behind."""
    known = KnownExtensions(db)
    db.on_change(known.changed)
    await known.aclose()
    await ManagerRepository(db).save(login="ivan", name="Иван", extensions=("13",))
    assert known._reload is None
    assert known.reloads == 0
