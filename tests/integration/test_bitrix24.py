"""Bitrix24 as a local application against the strict fake portal, over real HTTP: install, every recorded
trace as one telephony call, outages, rate limits, token expiry, a node killed mid-delivery, click-to-call."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from crmtel.app import start
from crmtel.bitrix24.fake import FakeBitrix24
from crmtel.bitrix24.web import PATH, EventHandler
from crmtel.calls.service import CallService
from crmtel.config import (
    CallsSettings,
    OutboxSettings,
)
from crmtel.connectors.service import ConnectorService, OutboxTap, utcnow
from crmtel.dial.models import DialRefused, DialRequest
from crmtel.domain import CallEnded, Direction, Manager
from crmtel.store.db import Database
from crmtel.store.models import ConnectorDeliveryRow, ConnectorEventRow, ConnectorTokenRow
from crmtel.store.outbox import OutboxRepository
from crmtel.store.parties import PartyRepository
from tests.fixtures.bitrix24 import (
    FAST,
    Dialer,
    answered_call,
    assert_one_activity_per_call,
    deliver,
    drive,
    fake_portal,
    handler_app,
    install,
    recordings,
    settings_for,
    settled,
    sink_for,
)
from tests.fixtures.daemon import app_settings
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.traces import SCENARIOS


async def test_every_trace_becomes_exactly_one_bitrix24_call(db: Database, tmp_path: Path) -> None:
    """Installed app, nine traces: one finished call each (anonymous: none), cards shown and hidden."""
    folder = recordings(tmp_path / "monitor")
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = await install(db, fake, settings, folder)
        async with ConnectorService([sink], OutboxRepository(db), FAST, node="a") as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await drive(service, SCENARIOS)
            await wait_until(lambda: settled(db), limit=30)
        assert_one_activity_per_call(fake, SCENARIOS)
        # Queue phones that rang got the card; the ones that stopped ringing had it hidden.
        assert fake.shown
        assert fake.hidden
        assert "user.get" in fake.requests


async def test_the_tokens_are_sealed_at_rest_and_a_wrong_application_token_is_refused(
    db: Database, tmp_path: Path
) -> None:
    """The stored blob holds no token in clear; events with another application token get 403."""
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = sink_for(db, settings, tmp_path)
        async with handler_app(EventHandler(sink.client, sink.users, db, Dialer())) as url:
            # An install whose tokens do not work on the portal (forged) is refused and stores nothing.
            forged = {"access_token": "x" * 32, "refresh_token": "y" * 32, "domain": f"127.0.0.1:{fake.port}"}
            assert await fake.post_event(url, "ONAPPINSTALL", {}, tokens=forged) == 403
            assert await sink.client.tokens.load() is None
            assert await fake.install(url) == 200
            wrong = await fake.post_event(
                url,
                "ONEXTERNALCALLSTART",
                {"CALL_ID": "c", "PHONE_NUMBER": "79161110001", "USER_ID": "11"},
                application_token="not-the-one",
            )
            assert wrong == 403
        async with db.session() as session:
            (sealed,) = (await session.execute(select(ConnectorTokenRow.sealed))).scalars().all()
        stored = await sink.client.tokens.load()
        assert stored is not None
        assert stored.access_token in fake.access
        for secret in (stored.access_token, stored.refresh_token, stored.application_token):
            assert secret not in sealed
        assert stored.access_token not in repr(stored)
        await sink.aclose()


async def test_only_a_portal_administrator_can_install_or_replace_the_application_token(
    db: Database, tmp_path: Path
) -> None:
    """A user without the right to manage applications (user.admin false) cannot install their own application
    token with the access token any user's application page receives; forged click-to-calls then stay refused.
    An administrator's re-install (a new application token) is taken."""
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = sink_for(db, settings, tmp_path)
        dialer = Dialer()
        async with handler_app(EventHandler(sink.client, sink.users, db, dialer)) as url:
            assert await fake.install(url) == 200
            installed = await sink.client.tokens.load()
            assert installed is not None
            assert installed.application_token == fake.application_token
            # Анна (user 11, no admin rights) opened the application: her tokens pass app.info for it.
            hers = fake.issue(11)
            assert await sink.client.call_with("app.info", {}, hers["access_token"])
            evil = "e" * 32
            refused = await fake.post_event(
                url, "ONAPPINSTALL", {"INSTALLED": "Y"}, tokens=hers, application_token=evil
            )
            assert refused == 403
            kept = await sink.client.tokens.load()
            assert kept is not None
            assert (kept.application_token, kept.access_token) == (
                installed.application_token,
                installed.access_token,
            )
            forged = {"CALL_ID": "c1", "PHONE_NUMBER": "79161110001", "USER_ID": "11"}
            assert await fake.post_event(url, "ONEXTERNALCALLSTART", forged, application_token=evil) == 403
            assert dialer.placed == []
            # The administrator re-installs the application: the portal's new application token is taken.
            fake.application_token = "a" * 32
            assert await fake.install(url) == 200
            again = await sink.client.tokens.load()
            assert again is not None
            assert again.application_token == "a" * 32
            # After an uninstall (with the current token) a non-administrator still cannot install.
            assert await fake.post_event(url, "ONAPPUNINSTALL", {}) == 200
            assert (
                await fake.post_event(url, "ONAPPINSTALL", {}, tokens=fake.issue(11), application_token=evil)
                == 403
            )
            assert await sink.client.tokens.load() is None
        await sink.aclose()


async def test_an_outage_rate_limits_and_an_expired_token_lose_and_duplicate_nothing(
    db: Database, tmp_path: Path
) -> None:
    """Portal down while calls happen, then QUERY_LIMIT_EXCEEDED answers, then every token expires mid-way."""
    folder = recordings(tmp_path / "monitor")
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = await install(db, fake, settings, folder)
        port = fake.port
        await fake.stop()
        async with ConnectorService([sink], OutboxRepository(db), FAST, node="a") as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await drive(service, SCENARIOS[:4])
            worker = connectors.workers[0]
            await wait_until(lambda: _retried(worker.retried, 3), limit=60)
            fake.limit_next = 6
            await fake.start(port)
            await wait_until(lambda: _some_finished(fake), limit=60)
            fake.expire_tokens()
            await drive(service, SCENARIOS[4:])
            await wait_until(lambda: settled(db), limit=30)
        assert sink.client.refreshes >= 1
        assert_one_activity_per_call(fake, SCENARIOS)
        async with db.session() as session:
            answers = list((await session.execute(select(ConnectorDeliveryRow.answer))).scalars())
        # The delivery log kept the portal's answers: no answer while it was down, then its rate limit.
        assert any("NO_ANSWER" in a for a in answers)
        assert any("QUERY_LIMIT_EXCEEDED" in a for a in answers)


async def _retried(count: int, minimum: int) -> bool:
    return count >= minimum


async def _some_finished(fake: FakeBitrix24) -> bool:
    return len(fake.activities) >= 1


async def test_a_node_killed_mid_delivery_is_taken_over_without_a_second_bitrix24_call(
    db: Database, tmp_path: Path
) -> None:
    """Node a registers and finishes calls but dies before recording it; node b redelivers: one activity each."""
    folder = recordings(tmp_path / "monitor")
    repo = OutboxRepository(db)
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink_a = await install(db, fake, settings, folder)
        service = CallService(db, CallsSettings(), PartyRepository(db), tap=OutboxTap([sink_a]))
        await drive(service, SCENARIOS)
        # Node a works through the outbox for a while but settles only every other event it sends: the others it
        # "sent, then died" before recording the answer, and their claims run out.
        rounds = 0
        while rounds < 6 and not await settled(db):
            claimed = await repo.claim("bitrix24", "a", utcnow(), timedelta(seconds=0.2), 50)
            if not claimed:
                await asyncio.sleep(0.05)
                continue
            for i, (event, memo) in enumerate(claimed):
                attempt = await sink_a.deliver(event, memo)
                if (i + rounds) % 2 == 0:
                    await repo.settle(event, attempt, node="a", now=utcnow(), next_at=None)
            rounds += 1
        assert rounds == 6, "node a should die with work left"
        await sink_a.aclose()
        async with ConnectorService([sink_for(db, settings, folder)], repo, FAST, node="b"):
            await wait_until(lambda: settled(db), limit=30)
        assert_one_activity_per_call(fake, SCENARIOS)


async def test_click_to_call_from_bitrix24_dials_and_finishes_its_own_call_without_registering_again(
    db: Database, tmp_path: Path
) -> None:
    """ONEXTERNALCALLSTART: crmtel dials from the user's extension; the call's end finishes Bitrix24's CALL_ID."""
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = sink_for(db, settings, tmp_path)
        dialer = Dialer()
        async with handler_app(EventHandler(sink.client, sink.users, db, dialer)) as url:
            assert await fake.install(url) == 200
            status, call_id = await fake.click_to_call(url, 12, "79161110001")
        assert status == 200
        (placed,) = dialer.placed
        assert (placed.extension, placed.number) == ("102", "79161110001")
        record = answered_call(
            "1795.1",
            Direction.OUTBOUND,
            "102",
            "79161110001",
            answered_by="102",
            ring_seconds=5,
            talk_seconds=42,
            originate_id=placed.originate_id,
        )
        await deliver(db, sink, CallEnded("pbx1:1795.1", record, record.ended_at or record.started_at))
        assert len(fake.registrations) == 1
        (activity,) = fake.activities
        assert (activity.call_id, activity.user_id, activity.duration, activity.status_code) == (
            call_id,
            12,
            42,
            "200",
        )


async def test_the_fake_is_strict_like_the_real_portal(db: Database, tmp_path: Path) -> None:
    """Unknown method 404, webhook auth WRONG_AUTH_TYPE, missing user ERROR_CORE, no token NO_AUTH_FOUND."""
    async with fake_portal() as fake, aiohttp.ClientSession() as http:
        token = fake.issue()["access_token"]
        rest = f"{fake.url}/rest/"
        hook = fake.make_webhook()
        cases = [
            (rest + "telephony.externalCall.nosuch", {"auth": token}, 404, "ERROR_METHOD_NOT_FOUND"),
            (f"{hook}telephony.externalcall.register", {}, 403, "WRONG_AUTH_TYPE"),
            (f"{rest}1/abc/user.get", {}, 401, "INVALID_CREDENTIALS"),
            (
                rest + "telephony.externalcall.register",
                {"auth": token, "PHONE_NUMBER": "7916", "TYPE": 2},
                400,
                "ERROR_CORE",
            ),
            (
                rest + "telephony.externalcall.finish",
                {"auth": token, "CALL_ID": "nope", "USER_ID": 1},
                400,
                "ERROR_CORE",
            ),
            (rest + "user.get", {}, 401, "NO_AUTH_FOUND"),
        ]
        for url, body, status, error in cases:
            async with http.post(url, json=body) as response:
                assert response.status == status, url
                assert (await response.json())["error"] == error, url


async def test_a_running_crmtel_takes_the_install_and_refuses_forged_events(database_url: str) -> None:
    """The handler is mounted without login at /integrations/bitrix24/events; /healthz lists the bitrix24 outbox."""
    async with fake_portal() as fake:
        settings = app_settings(
            database_url,
            bitrix24=settings_for(fake),
        )
        async with start(settings) as running, aiohttp.ClientSession() as http:
            url = running.web_url.rstrip("/") + PATH
            assert await fake.install(url) == 200
            forged = await fake.post_event(url, "ONAPPUNINSTALL", {}, application_token="forged")
            assert forged == 403
            async with http.get(running.web_url + "healthz") as response:
                health = await response.json()
    assert "bitrix24" in health["outbox"]


async def test_hostile_events_get_clear_answers_never_a_500(db: Database, tmp_path: Path) -> None:
    """JSON instead of a form 415, a flood of fields 400, a click-to-call without CALL_ID 400, the store gone 503."""
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = sink_for(db, settings, tmp_path)
        async with (
            handler_app(EventHandler(sink.client, sink.users, db, Dialer())) as url,
            aiohttp.ClientSession() as http,
        ):
            assert await fake.install(url) == 200
            token = fake.application_token
            async with http.post(url, json={"event": "ONAPPINSTALL"}) as response:
                assert response.status == 415
            flood = "&".join(f"data[f{i}]=x" for i in range(500))
            form = {"content-type": "application/x-www-form-urlencoded"}
            async with http.post(url, data=flood, headers=form) as response:
                assert response.status == 400
            body = f"event=ONEXTERNALCALLSTART&auth[application_token]={token}&data[USER_ID]=12"
            async with http.post(url, data=body, headers=form) as response:
                assert response.status == 400
            broken = Database("sqlite+aiosqlite:////nonexistent-dir/crmtel.db")
            sink_broken = sink_for(broken, settings, tmp_path)
            async with (
                handler_app(EventHandler(sink_broken.client, sink_broken.users, broken, None)) as url2,
                http.post(url2, data=body, headers=form) as response,
            ):
                assert response.status == 503
            await sink_broken.aclose()
            await broken.dispose()
        await sink.aclose()


class _RefusingDialer(Dialer):
    """A click-to-call crmtel will not place (another's phone, a stopped number …)."""

    async def prepare(
        self,
        number: str,
        *,
        manager: Manager | None,
        extension: str | None = None,
        pbx: str | None = None,
        name: str | None = None,
    ) -> DialRequest:
        raise DialRefused("dial.bad_number", number=number)


async def test_a_click_to_call_crmtel_refuses_is_finished_as_cancelled_not_left_open(
    db: Database, tmp_path: Path
) -> None:
    """Bitrix24 registered the call before asking; crmtel refuses to dial: the call is finished 603-S."""
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = sink_for(db, settings, tmp_path)
        async with handler_app(EventHandler(sink.client, sink.users, db, _RefusingDialer())) as url:
            assert await fake.install(url) == 200
            status, call_id = await fake.click_to_call(url, 12, "79161110001")
        assert status == 200
        async with ConnectorService([sink], OutboxRepository(db), FAST, node="a"):
            await wait_until(lambda: settled(db), limit=60)
    (activity,) = fake.activities
    assert (activity.call_id, activity.user_id, activity.status_code, activity.duration) == (
        call_id,
        12,
        "603-S",
        0,
    )
    assert len(fake.registrations) == 1


async def _nothing_due(db: Database, now: datetime) -> bool:
    """No call's first undelivered event is due (the worker tried them all and rescheduled them)."""
    e = ConnectorEventRow
    before = aliased(ConnectorEventRow)
    earlier = (
        select(before.id)
        .where(
            before.pbx == e.pbx, before.linkedid == e.linkedid, before.id < e.id, before.state != "delivered"
        )
        .exists()
    )
    async with db.session() as session:
        due = await session.execute(
            select(func.count()).where(
                e.state == "pending", e.next_at <= now, e.claimed_by.is_(None), ~earlier
            )
        )
        return int(due.scalar_one()) == 0


class _Clock:
    """The outbox's clock: real time plus an offset the test moves (a 10-minute outage without the wait)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


async def _delivered_on_the_clock(db: Database, clock: _Clock, connector: str) -> bool:
    """Every event of ``connector`` delivered. Until then, when the worker holds none and none is due — each
    waits out a backoff, e.g. after a 429 or a timeout once the CRM is back — the outbox's clock moves on to the
    earliest: an event already retried through the outage waits 5 s × 2^attempts (minutes) of that clock, not
    of the test's real time. A connector that keeps failing still fails (give_up_hours), and its retries count."""
    e = ConnectorEventRow
    before = aliased(ConnectorEventRow)
    earlier = (
        select(before.id)
        .where(
            before.pbx == e.pbx, before.linkedid == e.linkedid, before.id < e.id, before.state != "delivered"
        )
        .exists()
    )
    now = clock()
    busy = e.claimed_by.is_not(None) | ((e.next_at <= now) & ~earlier)
    async with db.session() as session:
        row = (
            await session.execute(
                select(
                    func.count(),
                    func.count().filter(e.state != "pending"),
                    func.count().filter(busy),
                    func.min(e.next_at),
                ).where(e.connector == connector, e.state != "delivered")
            )
        ).one()
    undelivered, failed, in_hand, earliest = int(row[0]), int(row[1]), int(row[2]), row[3]
    assert failed == 0, f"{failed} {connector} event(s) failed"
    if undelivered == 0:
        return True
    if in_hand == 0 and earliest is not None:
        if earliest.tzinfo is None:  # SQLite hands naive datetimes back; they were written in UTC
            earliest = earliest.replace(tzinfo=now.tzinfo)
        clock.offset += max(earliest - now, timedelta(0)) + timedelta(seconds=1)
    return False


async def test_a_ten_minute_outage_with_the_default_backoff_loses_and_duplicates_nothing(
    db: Database, tmp_path: Path
) -> None:
    """The portal is down for ten minutes (the outbox's clock moved on) under the shipped backoff (5 s doubling):
    every call is delivered once when it is back, and the retries were spaced by the backoff, not hammered."""
    folder = recordings(tmp_path / "monitor")
    clock = _Clock()
    shipped = OutboxSettings(poll_seconds=0.05, backlog_seconds=0.1)
    async with fake_portal() as fake:
        # Paced faster than the portal's 2/s: ~150 requests fall due at once when it is back, and this test is
        # about the backoff, not the rate limit (at 2/s past the burst they alone take about a minute).
        settings = settings_for(fake, rate_per_second=20.0)
        sink = await install(db, fake, settings, folder)
        port = fake.port
        await fake.stop()
        async with ConnectorService(
            [sink], OutboxRepository(db), shipped, node="a", clock=clock
        ) as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await drive(service, SCENARIOS)
            worker = connectors.workers[0]
            await wait_until(lambda: _retried(worker.retried, 1), limit=60)
            for _minute in range(10):
                clock.offset += timedelta(minutes=1)
                # Each minute the worker tries what fell due, and reschedules it by the backoff.
                await wait_until(lambda: _nothing_due(db, clock()), limit=60)
            await fake.start(port)
            clock.offset += timedelta(hours=1)  # past the longest backoff so far: every event is due
            await wait_until(lambda: _delivered_on_the_clock(db, clock, "bitrix24"), limit=180)
        assert_one_activity_per_call(fake, SCENARIOS)
        # With 5 s doubling, ten minutes hold a handful of attempts per event (5, 10, 20 … 320 s), not one per poll.
        async with db.session() as session:
            rows = await session.execute(
                select(ConnectorDeliveryRow.event_id, func.count())
                .where(ConnectorDeliveryRow.outcome == "retry")
                .group_by(ConnectorDeliveryRow.event_id)
            )
            retries = dict(rows.all())
        assert retries
        assert 2 <= max(retries.values()) <= 12, retries
