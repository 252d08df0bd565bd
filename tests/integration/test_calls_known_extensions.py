"""The call service reads the managers' extensions from the store: with the browser phone on, a desk phone 9913
of one manager is that manager's phone, not extension 13's browser device 99<ext>."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from crmtel.calls.extensions import SETTLE_SECONDS, KnownExtensions
from crmtel.calls.setup import build_call_service
from crmtel.config import Settings, WebphoneSettings
from crmtel.domain import Manager, Role
from crmtel.errors import StoreUnavailable
from crmtel.store.calls import CallRepository
from crmtel.store.changes import StoreChange
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


class _Gated(ManagerRepository):
    """The managers' store answering only once ``gate`` opens, with the extensions saved by then."""

    def __init__(self, db: Database, gate: asyncio.Future[None], extensions: list[str]) -> None:
        super().__init__(db)
        self.gate = gate
        self.extensions = extensions
        self.asked = asyncio.Event()

    async def all(self) -> list[Manager]:
        self.asked.set()
        await self.gate
        return [
            Manager(n + 1, f"m{n}", f"m{n}", Role.MANAGER, True, None, (ext,))
            for n, ext in enumerate(self.extensions)
        ]


async def test_a_change_told_as_the_last_reread_finishes_is_read_again(db: Database) -> None:
    """A commit told in the same turn of the loop as the re-read's last step (after that step, before the task's
    done callbacks ran) is not dropped: the extensions it saved are read too."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    saved = ["13"]
    known = KnownExtensions(db)
    gated = known._repo = _Gated(db, gate, saved)

    async def petr_saved() -> None:
        await gate  # woken by the same answer as the re-read, just after it
        saved.append("9913")
        known.changed(StoreChange(everything=True))  # what Database.committed tells right after the commit

    try:
        known.changed(StoreChange(everything=True))
        await asyncio.wait_for(gated.asked.wait(), 10)  # the re-read now waits for the store
        writer = asyncio.create_task(petr_saved())
        await asyncio.sleep(0)
        gate.set_result(None)
        await writer
        await asyncio.wait_for(known.settled(), 10)
        assert known.current == {"13", "9913"}
    finally:
        await known.aclose()


class _Snapshots(ManagerRepository):
    """The managers' store where each read sees the extensions saved when it began and answers when let go."""

    def __init__(self, db: Database, extensions: list[str]) -> None:
        super().__init__(db)
        self.extensions = extensions
        self.gates: list[asyncio.Future[None]] = []
        self.second = asyncio.Event()

    async def all(self) -> list[Manager]:
        seen = list(self.extensions)
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        if len(self.gates) == 2:
            self.second.set()
        await gate
        return [
            Manager(n + 1, f"m{n}", f"m{n}", Role.MANAGER, True, None, (ext,)) for n, ext in enumerate(seen)
        ]


async def test_an_older_read_answering_last_does_not_undo_a_newer_one(db: Database) -> None:
    """A tracker's restore (a cluster node becoming a PBX's leader) reads the extensions while a change's re-read
    runs: the restore's read began first, so what it saw must not replace what the later read saw."""
    saved = ["13"]
    known = KnownExtensions(db)
    repo = known._repo = _Snapshots(db, saved)
    try:
        restore = asyncio.create_task(known.load())  # CallService.restore -> learn_extensions
        await asyncio.sleep(0)
        saved.append("9913")  # petr saved...
        known.changed(StoreChange(everything=True))  # ...and his commit told
        await asyncio.wait_for(repo.second.wait(), 10)  # the change's read, after its settling pause
        repo.gates[1].set_result(None)  # the change's read answers first
        await asyncio.wait_for(known.settled(), 10)
        assert known.current == {"13", "9913"}
        repo.gates[0].set_result(None)  # the restore's older read last
        await restore
        assert known.current == {"13", "9913"}
    finally:
        await known.aclose()


async def test_a_burst_of_crm_writes_is_a_few_reads(db: Database) -> None:
    """300 CRM writes one after another (an import's batches, a busy page): the extensions are read a few times
    (each read takes every change told before it), not once per write — and the last write is read."""
    managers = ManagerRepository(db)
    await managers.save(login="ivan", name="Иван", extensions=("13",))
    known = KnownExtensions(db)
    db.on_change(known.changed)
    try:
        began = asyncio.get_running_loop().time()
        for n in range(300):
            await managers.save(login="ivan", name=f"Иван {n}", extensions=("13",))
        await managers.save(login="petr", name="Пётр", extensions=("9913",))
        await asyncio.wait_for(known.settled(), 10)
        took = asyncio.get_running_loop().time() - began
        assert known.current == {"13", "9913"}
        # At most one read per settling pause (and the one after the last write).
        assert known.reloads <= took / SETTLE_SECONDS + 2, (known.reloads, took)
    finally:
        await known.aclose()
