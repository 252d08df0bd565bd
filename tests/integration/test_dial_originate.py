"""Click-to-call over real TCP: the exact Originate crmtel sends to the fake Asterisk, what the PBX's answers
mean to the manager, the double click, someone else's phone, and the outbound call the tracker records."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from crmtel.ami.client import AmiClient
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, DialRule, OriginateSettings
from crmtel.dial.models import DialRefused, DialResult, DialStatus
from crmtel.dial.service import DialService
from crmtel.domain import Direction, Manager, Outcome, Role
from crmtel.fakepbx.server import FakeAmiServer
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from tests.fixtures.fake_ami import running, settings_for, wait_for, wait_until

RU_RULES = (DialRule(prefix="+7", replace="8"), DialRule(prefix="+", replace="810"))


@dataclass
class Rig:
    server: FakeAmiServer
    dial: DialService
    calls: CallService
    anna: Manager
    head: Manager
    results: list[tuple[int | None, DialResult]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def rig(db: Database, **originate: object) -> AsyncIterator[Rig]:
    """The fake PBX (no calls of its own), the real AMI client and call service, and the dial service."""
    managers = ManagerRepository(db)
    anna = await managers.save(login="anna", name="Анна Смирнова", extensions=("101",))
    head = await managers.save(login="olga", name="Olga", role=Role.HEAD, extensions=("100",))
    server = FakeAmiServer([], speed=None)
    server.originate_speed = None
    await server.start()
    calls = CallService(db, CallsSettings(), PartyRepository(db))
    client = AmiClient(settings_for(server), calls)
    settings = OriginateSettings.model_validate({"dial_rules": RU_RULES, **originate})
    results: list[tuple[int | None, DialResult]] = []
    dial = DialService(
        {"pbx1": client},
        {"pbx1": settings},
        locator=calls.calls,
        notify=lambda mid, result: results.append((mid, result)),
    )
    try:
        async with running(client):
            await wait_for(client.connected.is_set)
            yield Rig(server, dial, calls, anna, head, results)
            await dial.aclose()
    finally:
        await server.close()


async def test_originate_sends_the_exact_fields_and_the_outbound_call_is_recorded_once(db: Database) -> None:
    """The manager's own phone first, then the client's number by the dial rules; the call links back."""
    client = await PartyRepository(db).add_client(NewClient(name='ООО "Ромашка"', phones=("+79161110001",)))
    async with rig(db) as r:
        request = await r.dial.prepare("+7 916 111-00-01", manager=r.anna, name='ООО "Ромашка"')
        first = await r.dial.start(request, manager_id=r.anna.id)
        assert first.status is DialStatus.CALLING
        await r.dial.idle()
        (sent,) = r.server.originates
        assert sent.get("Action") == "Originate"
        assert sent.action_id == request.originate_id
        assert request.originate_id.startswith("crmtel-")
        fields = {k: v for k, v in sent.headers if k != "Variable"}
        assert fields == {
            "Action": "Originate",
            "ActionID": request.originate_id,
            "Async": "true",
            "CallerID": "ООО Ромашка <89161110001>",
            "Channel": "PJSIP/101",
            "Context": "crmtel-originate",
            "Exten": "89161110001",
            "Priority": "1",
            "Timeout": "30000",
        }
        assert [v for k, v in sent.headers if k == "Variable"] == [
            f"CRMTEL_ORIGINATE_ID={request.originate_id}",
            "CRMTEL_DIAL_NUMBER=+79161110001",
            "CRMTEL_MANAGER_EXTENSION=101",
            "CRMTEL_MANAGER=anna",
        ]
        assert [(mid, res.status) for mid, res in r.results] == [(r.anna.id, DialStatus.ANSWERED)]

        repo = CallRepository(db)

        async def recorded() -> bool:
            stored = await repo.by_originate(request.originate_id)
            return bool(stored) and stored[0].record.ended_at is not None

        await wait_until(recorded)
        (stored,) = await repo.by_originate(request.originate_id)
        record = stored.record
        assert (record.direction, record.outcome) == (Direction.OUTBOUND, Outcome.ANSWERED)
        assert (record.caller_number, record.dialled, record.answered_by) == ("101", "89161110001", "101")
        assert (record.party_id, record.originate_id) == (client.id, request.originate_id)
        assert record.talk_seconds == pytest.approx(3.0, abs=1.0)
        assert len(await repo.between()) == 1


async def test_double_click_dials_once(db: Database) -> None:
    """A second click on the same number within dedup_seconds returns the first attempt; one Originate."""
    async with rig(db, dedup_seconds=5) as r:
        one = await r.dial.start(await r.dial.prepare("89161110001", manager=r.anna), manager_id=r.anna.id)
        two = await r.dial.start(await r.dial.prepare("+79161110001", manager=r.anna), manager_id=r.anna.id)
        await r.dial.idle()
        assert two.duplicate
        assert two.request.originate_id == one.request.originate_id
        assert len(r.server.originates) == 1
        # Another number is another call.
        await r.dial.start(await r.dial.prepare("+79162220002", manager=r.anna), manager_id=r.anna.id)
        await r.dial.idle()
        assert [m.get("Exten") for m in r.server.originates] == ["89161110001", "89162220002"]


@pytest.mark.parametrize(
    ("outcome", "status", "events"),
    [
        ("busy", DialStatus.BUSY, 3),
        ("declined", DialStatus.REJECTED, 3),
        ("no-answer", DialStatus.NO_ANSWER, 3),
        ("not-registered", DialStatus.FAILED, 0),
    ],
)
async def test_failed_originate_reaches_the_manager_with_its_true_reason_and_leaves_no_call_record(
    db: Database, outcome: str, status: DialStatus, events: int
) -> None:
    """The failed attempts recorded on Asterisk 22.10.1, replayed: busy and declined say ``Reason: 0`` like a
    phone that is not registered, yet the page is told busy / declined / no answer / not registered, and no
    call row is left (the phone's channel came and went)."""
    async with rig(db) as r:
        r.server.originate_outcome = outcome
        request = await r.dial.prepare("+79161110001", manager=r.anna)
        await r.dial.start(request, manager_id=r.anna.id)
        await r.dial.idle()
        assert [(mid, res.status) for mid, res in r.results] == [(r.anna.id, status)]
        assert r.results[0][1].status.message_key == f"dial.status.{status.value}"
        await wait_for(lambda: r.calls.events >= events)
        await r.calls.flush()
        assert await CallRepository(db).between() == []


async def test_pbx_refusal_is_reported_with_its_words(db: Database) -> None:
    """Response: Error (e.g. the AMI user lacks the originate class): refused, with the PBX's message."""
    async with rig(db) as r:
        r.server.originate_error = "Permission denied"
        result = await r.dial.call(await r.dial.prepare("+79161110001", manager=r.anna))
        assert (result.status, result.detail) == (DialStatus.REFUSED, "Permission denied")
        assert not result.status.ok


async def test_someone_elses_extension_is_refused_heads_included(db: Database) -> None:
    """A manager, and a head too, may ring only their own phone; nothing reaches the PBX."""
    async with rig(db) as r:
        for who in (r.anna, r.head):
            with pytest.raises(DialRefused) as refused:
                await r.dial.prepare("+79161110001", manager=who, extension="102")
            assert (refused.value.key, refused.value.status) == ("dial.not_your_extension", 403)
        with pytest.raises(DialRefused) as bad:
            await r.dial.prepare("not a number", manager=r.anna)
        assert bad.value.key == "dial.bad_number"
        head_call = await r.dial.prepare("+79161110001", manager=r.head)
        assert head_call.extension == "100"
        assert r.server.originates == []


async def test_no_connection_to_the_pbx_is_unreachable(db: Database) -> None:
    """A PBX crmtel is not logged in to: the attempt fails at once as unreachable."""
    async with rig(db) as r:
        request = await r.dial.prepare("+79161110001", manager=r.anna)
        await r.server.close()
        await wait_for(lambda: not r.dial.originators["pbx1"].connected.is_set())  # type: ignore[attr-defined]
        result = await r.dial.call(request)
        assert result.status is DialStatus.UNREACHABLE
