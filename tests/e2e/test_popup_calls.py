"""Call-card popups in headless Chromium, fed by a real trace through the fake AMI server and the real pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Dialog, Page, expect

from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Message
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, WebSettings
from crmtel.domain import Category
from crmtel.fakepbx.server import FakeAmiServer, Recorded, StreamItem, load_ami
from crmtel.push.cards import StoreCards
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.store.db import Database
from crmtel.store.notes import NoteRepository
from crmtel.store.parties import NewClient, PartyRepository
from tests.fixtures.fake_ami import running, settings_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

HOSTILE = "<img src=x onerror=alert(1)>"
SEEN = 5_000  # ms the browser may take to show a change


def ringall_trace(traces_dir: Path, caller_name: str | None = None) -> list[StreamItem]:
    """queue-ringall-answered: retail rings 102 and 103, 103 answers; optionally with another caller name."""
    stream: list[StreamItem] = list(load_ami(traces_dir / "queue-ringall-answered.ami"))
    if caller_name is None:
        return stream
    out: list[StreamItem] = []
    for item in stream:
        if isinstance(item, Recorded):
            headers = tuple(
                (k, caller_name if v == "<unknown>" and k in ("CallerIDName", "ConnectedLineName") else v)
                for k, v in item.headers
            )
            item = Recorded(item.t, headers)
        out.append(item)
    return out


def index_of(stream: list[StreamItem], event: str, **headers: str) -> int:
    """Position of the first message of this event with these header values."""
    for i, item in enumerate(stream):
        if isinstance(item, Recorded):
            msg = Message(item.headers)
            if msg.event == event and all(msg.get(k) == v for k, v in headers.items()):
                return i
    raise AssertionError(f"{event} {headers} not in trace")


@dataclass
class Stack:
    """The web app and call pipeline as the composition root wires them, plus the browser pages."""

    db: Database
    web: TestServer
    service: CallService
    browser: Browser
    dialogs: list[str] = field(default_factory=list)

    async def page_for(self, login: str) -> Page:
        """A fresh browser profile logged in as ``login`` through the page's form, its websocket live."""
        context = await self.browser.new_context()
        page = await context.new_page()
        page.on("dialog", self._on_dialog)
        await page.goto(str(self.web.make_url("/")))
        await page.fill("#login-name", login)
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("#conn")).to_have_text("live", timeout=SEEN)
        return page

    async def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


@contextlib.asynccontextmanager
async def stack(db: Database, browser: Browser) -> AsyncIterator[Stack]:
    await seed_managers(db)
    await PartyRepository(db).add_client(
        NewClient(name="OOO Romashka", phones=("+79031234567",), category=Category.RETAIL, stop_list=True)
    )
    hub = Hub()
    web = TestServer(create_app(WebSettings(port=0), db=db, hub=hub), host="127.0.0.1", port=0)
    await web.start_server()
    try:
        async with Notifier(hub, StoreCards(db), ManagerNames(db)) as notifier:
            service = CallService(db, CallsSettings(), PartyRepository(db), notifier)
            yield Stack(db, web, service, browser)
    finally:
        await web.close()


@contextlib.asynccontextmanager
async def replaying(
    service: CallService, stream: list[StreamItem], pause_after: int
) -> AsyncIterator[FakeAmiServer]:
    """The fake AMI server replaying ``stream`` into the real client and call service, held at ``pause_after``."""
    server = FakeAmiServer(stream, pause_after=pause_after)
    await server.start()
    try:
        async with running(AmiClient(settings_for(server), service)):
            yield server
    finally:
        await server.close()


async def test_ringall_pops_up_for_both_phones_and_closes_as_answered_by_103_for_the_loser(
    db: Database, browser: Browser, traces_dir: Path
) -> None:
    """Boris (102) and Vera (103) see the client's card ringing; Boris's closes as answered by Vera; Anna sees nothing."""
    async with stack(db, browser) as s:
        boris = await s.page_for("boris")
        vera = await s.page_for("vera")
        anna = await s.page_for("anna")
        stream = ringall_trace(traces_dir)
        answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
        hangup = index_of(stream, "Hangup", Channel="PJSIP/trunk-00000014")
        async with replaying(s.service, stream, pause_after=answer) as ami:
            for page in (boris, vera):
                popup = page.locator("#popups .card")
                await expect(popup).to_have_count(1, timeout=SEEN)
                await expect(popup.locator(".who")).to_have_text("OOO Romashka")
                await expect(popup.locator(".status")).to_contain_text("Ringing at")
                await expect(popup.locator(".stop")).to_have_text("STOP LIST")
                await expect(popup).to_contain_text("+7 903 123-45-67")
            await expect(boris.locator("#popups .card .status")).to_contain_text("102")
            await expect(vera.locator("#popups .card .status")).to_contain_text("103")
            # A page reloaded while the phone rings is sent the ringing call again on reconnect.
            await boris.reload()
            await expect(boris.locator("#popups .card .who")).to_have_text("OOO Romashka", timeout=SEEN)
            await expect(boris.locator("#popups .card .status")).to_contain_text("Ringing at 102")

            ami.resume()
            ami.pause_after = hangup
            await expect(boris.locator("#popups .card .status")).to_have_text(
                "Answered by Vera Lebedeva (103)", timeout=SEEN
            )
            await expect(vera.locator("#popups .card .status")).to_contain_text(
                "answered by you", timeout=SEEN
            )

            ami.resume()
            await expect(vera.locator("#popups .card .status")).to_contain_text("Ended — talk", timeout=SEEN)
            await expect(boris.locator("#popups .card .status")).to_have_text(
                "Answered by Vera Lebedeva (103)"
            )
            await wait_until(lambda: _call_stored(s.db))

        # The winner writes the call's result from the popup; it is stored against the call.
        form = vera.locator("#popups .card form.action").first
        await form.locator("input[name=topic]").fill("Prices")
        await form.locator("input[name=result]").fill("Sent offer")
        await form.locator("button[type=submit]").click()
        await expect(form.locator(".msg")).to_have_text("Saved.", timeout=SEEN)
        call_row = await _call_stored(s.db)
        assert call_row is not None
        (note,) = await NoteRepository(s.db).for_call(call_row)
        assert (note.topic, note.result) == ("Prices", "Sent offer")

        # Anna's phone never rang: no popup, and the call is not in her history either.
        await expect(anna.locator("#popups .card")).to_have_count(0)
        await anna.click("#refresh")
        await expect(anna.locator("[data-testid=history-row]")).to_have_count(0)
        await expect(vera.locator("[data-testid=history-row]")).to_have_count(1, timeout=SEEN)
        assert s.dialogs == []


async def test_a_missed_call_card_says_why_in_the_managers_words(
    db: Database, browser: Browser, traces_dir: Path
) -> None:
    """queue-abandoned: the caller gives up while 102 and 103 ring; the server sends the code abandoned_in_queue
    and each card says why in words from the catalogue, never the code."""
    async with stack(db, browser) as s:
        boris = await s.page_for("boris")
        vera = await s.page_for("vera")
        stream: list[StreamItem] = list(load_ami(traces_dir / "queue-abandoned.ami"))
        async with replaying(s.service, stream, pause_after=len(stream)):
            for page in (boris, vera):
                status = page.locator("#popups .card .status")
                await expect(status).to_have_text("Missed — the caller hung up in the queue", timeout=SEEN)
                await expect(status).not_to_contain_text("abandoned_in_queue")
        assert s.dialogs == []


async def test_hostile_caller_name_is_shown_literally_and_runs_nothing(
    db: Database, browser: Browser, traces_dir: Path
) -> None:
    """A caller ID name of '<img src=x onerror=alert(1)>' appears as that text; no element, no dialog."""
    async with stack(db, browser) as s:
        boris = await s.page_for("boris")
        stream = ringall_trace(traces_dir, caller_name=HOSTILE)
        answer = index_of(stream, "DialEnd", DialStatus="ANSWER")
        async with replaying(s.service, stream, pause_after=answer):
            popup = boris.locator("#popups .card")
            await expect(popup).to_have_count(1, timeout=SEEN)
            await expect(popup.locator("dd", has_text=HOSTILE)).to_have_count(1)
            assert await popup.locator("img").count() == 0
            assert await boris.locator("img").count() == 0
        assert s.dialogs == []


async def _call_stored(db: Database) -> int | None:
    from sqlalchemy import select

    from crmtel.store.models import CallRow

    async with db.session() as session:
        return (
            await session.execute(
                select(CallRow.id).where(CallRow.linkedid == "1795462077.20", CallRow.ended_at.is_not(None))
            )
        ).scalar_one_or_none()
