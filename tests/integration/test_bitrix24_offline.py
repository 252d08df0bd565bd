"""Bitrix24 without a public address: authorized by code, click-to-call taken from the offline event queue
(``event.offline.get``, clear=0 then ``event.offline.clear``) against the strict fake, handled as the posted event."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from crmtel.app import start
from crmtel.bitrix24.commands import _authorize
from crmtel.bitrix24.fake import FakeBitrix24
from crmtel.bitrix24.offline import OfflineEvents
from crmtel.bitrix24.web import EventHandler
from crmtel.config import (
    Bitrix24Settings,
)
from crmtel.domain import CallEnded, Direction
from crmtel.store.db import Database
from tests.fixtures.bitrix24 import (
    Dialer,
    answered_call,
    deliver,
    fake_portal,
    settings_for,
    sink_for,
)
from tests.fixtures.daemon import app_settings
from tests.fixtures.fake_ami import wait_until

POLL = 0.05


@contextlib.asynccontextmanager
async def _polling(poller: OfflineEvents) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.get_running_loop().create_task(poller.run(), name="test-offline")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _true(value: bool) -> bool:
    return value


def _offline(fake: FakeBitrix24) -> Bitrix24Settings:
    return settings_for(fake, public_url="")


async def test_click_to_call_is_polled_dialled_once_and_finished_under_bitrix24s_call_id(
    db: Database, tmp_path: Path
) -> None:
    """No public address: authorize by code, bind the event offline, poll it, dial, clear it; the call's end
    finishes Bitrix24's CALL_ID; the same event read again (the portal's repeat) dials nothing more."""
    async with fake_portal() as fake:
        settings = _offline(fake)
        assert settings.offline_events
        sink = sink_for(db, settings, tmp_path)
        await sink.client.authorize(fake.authorization_code())
        dialer = Dialer()
        poller = OfflineEvents(sink.client, EventHandler(sink.client, sink.users, db, dialer), interval=POLL)
        async with _polling(poller):
            await wait_until(lambda: _true(fake.bindings.get("ONEXTERNALCALLSTART") == "offline"))
            status, call_id = await fake.click_to_call("", 12, "79161110001")
            assert status == 0  # queued, nothing posted
            await wait_until(lambda: _true(len(dialer.placed) == 1 and not fake.offline))
            # Bitrix24 logs the same click again (an edit of the same object is one entry, read again).
            fake.queue_offline(
                "ONEXTERNALCALLSTART",
                {"CALL_ID": call_id, "PHONE_NUMBER": "79161110001", "USER_ID": "12"},
                "again",
            )
            await wait_until(lambda: _true(not fake.offline and poller.handled == 2))
        assert len(dialer.placed) == 1, "the repeated event dialled again"
        (placed,) = dialer.placed
        assert (placed.extension, placed.number) == ("102", "79161110001")
        assert {"event.offline.get", "event.offline.clear"} <= set(fake.requests)
        record = answered_call(
            "1795.9",
            Direction.OUTBOUND,
            "102",
            "79161110001",
            answered_by="102",
            ring_seconds=4,
            talk_seconds=30,
            originate_id=placed.originate_id,
        )
        await deliver(db, sink, CallEnded("pbx1:1795.9", record, record.started_at))
        assert len(fake.registrations) == 1, "registered again"
        (activity,) = fake.activities
        assert (activity.call_id, activity.user_id, activity.duration, activity.status_code) == (
            call_id,
            12,
            30,
            "200",
        )


async def test_a_batch_taken_but_not_handled_is_asked_for_again_and_errors_back_off(
    db: Database, tmp_path: Path
) -> None:
    """crmtel cannot dial (no dialler): the event stays hidden under its process_id, which a new poller (a
    restarted crmtel) reads from the store and asks with; the portal rate-limiting the poll is logged and
    retried; an entry that is no click-to-call is marked erroneous (event.offline.error), not retried."""
    async with fake_portal() as fake:
        settings = _offline(fake)
        sink = sink_for(db, settings, tmp_path)
        await sink.client.authorize(fake.authorization_code())
        blind = OfflineEvents(sink.client, EventHandler(sink.client, sink.users, db, None), interval=POLL)
        fake.bindings["ONEXTERNALCALLSTART"] = "offline"
        _, call_id = await fake.click_to_call("", 12, "79161110002")
        fake.queue_offline("ONEXTERNALCALLSTART", {"CALL_ID": "x", "USER_ID": "12"}, "broken")
        await blind.poll()
        # The broken entry went to the error list; the click waits, hidden under the batch's process_id.
        (waiting,) = [e for e in fake.offline if not e.error]
        assert waiting.process_id is not None
        assert waiting.process_id == blind.process_id
        assert [e.message_id for e in fake.offline if e.error] == ["broken"]
        dialer = Dialer()
        restarted = OfflineEvents(
            sink.client, EventHandler(sink.client, sink.users, db, dialer), interval=POLL
        )
        fake.limit_next = 2
        async with _polling(restarted):
            # Dialled, then cleared from the queue (the erroneous entry stays, marked).
            await wait_until(
                lambda: _true(len(dialer.placed) == 1 and not [e for e in fake.offline if not e.error]),
                limit=20,
            )
        # Blind's bind, then the restarted poller's two refused (QUERY_LIMIT_EXCEEDED) and the one that worked.
        assert fake.requests.count("event.bind") == 4
        assert not [e for e in fake.offline if not e.error]
        assert call_id in fake.registrations
        await sink.aclose()


async def test_a_running_crmtel_without_public_url_polls_and_finishes_a_refused_click(
    database_url: str, tmp_path: Path
) -> None:
    """`crmtel bitrix24 authorize CODE` (a spent code refused), then `crmtel run` with no public_url: a click by a
    portal user with no internal number is polled, refused, and Bitrix24's call finished as cancelled."""
    async with fake_portal() as fake:
        settings = app_settings(
            database_url,
            bitrix24=settings_for(fake, public_url="", offline_poll_seconds=1),
        )
        assert await _authorize(argparse.Namespace(code=fake.authorization_code()), settings) == 0
        assert await _authorize(argparse.Namespace(code="spent-or-forged"), settings) == 1
        async with start(settings) as running, aiohttp.ClientSession() as http:
            await wait_until(lambda: _true("ONEXTERNALCALLSTART" in fake.bindings), limit=20)
            _, call_id = await fake.click_to_call("", 1, "79161110003")
            await wait_until(lambda: _true(len(fake.activities) == 1), limit=30)
            async with http.get(running.web_url + "healthz") as response:
                assert "bitrix24" in (await response.json())["outbox"]
        (activity,) = fake.activities
        assert (activity.call_id, activity.status_code, activity.user_id) == (call_id, "603-S", 1)
        assert all(r.finished for r in fake.registrations.values())
        assert not fake.offline
