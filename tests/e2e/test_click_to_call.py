"""Click-to-call in headless Chromium: a manager clicks a number, the fake Asterisk receives the Originate, and
the outbound call it places pops up as a card; a failed attempt is said on the page; a deal's number is called
from the deal's card the same way."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from crmtel.ami.client import AmiClient
from crmtel.callbacks.web import callback_routes
from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, DealsSettings, DialRule, OriginateSettings, WebSettings
from crmtel.crm.web import CrmApi, crm_routes
from crmtel.deals.web import deal_routes
from crmtel.dial.service import DialService
from crmtel.dial.web import dial_routes, hub_notifier
from crmtel.domain import Category
from crmtel.fakepbx.server import FakeAmiServer
from crmtel.push.cards import StoreCards
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.store.callbacks import CallbackRepository
from crmtel.store.calls import CallRepository
from crmtel.store.crm_deals import CrmDeals
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_merge import PartyMerger
from crmtel.store.crm_parties import PartyCards
from crmtel.store.crm_timeline import Timelines
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository, NewDeal
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import TaskRow
from crmtel.store.parties import NewClient, PartyRepository
from tests.e2e.test_popup_calls import SEEN, index_of, ringall_trace
from tests.fixtures.fake_ami import running, settings_for, wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD, seed_managers

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]


@dataclass
class Rig:
    db: Database
    web: TestServer
    ami: FakeAmiServer
    browser: Browser

    async def page_for(self, login: str) -> Page:
        """A browser profile logged in as ``login``, its websocket live."""
        context = await self.browser.new_context(locale="en-US")
        page = await context.new_page()
        await page.goto(str(self.web.make_url("/")))
        await page.fill("#login-name", login)
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("#conn")).to_have_text("live", timeout=SEEN)
        return page


@contextlib.asynccontextmanager
async def rig(db: Database, browser: Browser, traces_dir: object) -> AsyncIterator[Rig]:
    """The ring-all trace held before its first event, the real pipeline, click-to-call and the page."""
    managers = await seed_managers(db)
    romashka = await PartyRepository(db).add_client(
        NewClient(name="OOO Romashka", phones=("+79031234567",), category=Category.RETAIL)
    )
    await DealRepository(db).add(
        NewDeal(title="Tiles", amount=Decimal(1000), manager_id=managers["anna"].id, client_id=romashka.id)
    )
    stream = ringall_trace(traces_dir)  # type: ignore[arg-type]
    ami = FakeAmiServer(stream, pause_after=0)
    ami.originate_speed = 10.0
    await ami.start()
    hub = Hub()
    try:
        async with Notifier(hub, StoreCards(db), ManagerNames(db)) as notifier:
            service = CallService(db, CallsSettings(), PartyRepository(db), notifier)
            client = AmiClient(settings_for(ami), service)
            rules = (DialRule(prefix="+7", replace="8"),)
            dial = DialService(
                {"pbx1": client},
                {"pbx1": OriginateSettings(dial_rules=rules)},
                locator=service.calls,
                notify=hub_notifier(hub),
            )
            crm = CrmApi(
                lists=PartyLists(db),
                cards=PartyCards(db),
                merger=PartyMerger(db),
                timelines=Timelines(db),
                parties=PartyRepository(db),
                managers=ManagerRepository(db),
                region="RU",
                recordings_dir=None,
                deals=DealsSettings(),
            )
            routes = (
                dial_routes(dial),
                callback_routes(CallbackRepository(db), ManagerRepository(db)),
                crm_routes(crm),
                deal_routes(CrmDeals(db), ManagerRepository(db), CallHistory(db), DealsSettings(), "RU"),
            )
            web = TestServer(create_app(WebSettings(port=0), db=db, hub=hub, routes=routes), port=0)
            await web.start_server()
            try:
                async with running(client):
                    yield Rig(db, web, ami, browser)
                    await dial.aclose()
            finally:
                await web.close()
    finally:
        await ami.close()


async def test_clicking_the_number_on_a_card_rings_my_phone_and_the_outbound_card_appears(
    db: Database, browser: Browser, traces_dir: object
) -> None:
    """Vera answers a client's call, clicks the number on its card: Originate from PJSIP/103, then her card."""
    async with rig(db, browser, traces_dir) as r:
        vera = await r.page_for("vera")
        stream = ringall_trace(traces_dir)  # type: ignore[arg-type]
        r.ami.pause_after = index_of(stream, "Hangup", Channel="PJSIP/trunk-00000014") + 1
        r.ami.resume()
        card = vera.locator("#popups [data-testid=call-card]")
        await expect(card).to_have_count(1, timeout=SEEN)
        await expect(card.locator(".status")).to_contain_text("Ended", timeout=SEEN)
        first_id = await card.first.get_attribute("data-call-id")

        await card.locator("[data-testid=dial-button]").first.click()
        await wait_until(_originated(r.ami))
        (sent,) = r.ami.originates
        assert (sent.get("Channel"), sent.get("Context"), sent.get("Exten")) == (
            "PJSIP/103",
            "crmtel-originate",
            "89031234567",
        )
        status = vera.locator("[data-testid=dial-status]")
        await expect(status).to_contain_text("+7 903 123-45-67", timeout=SEEN)

        # The outbound call the PBX places shows its own card: the client being called.
        cards = vera.locator("#popups [data-testid=call-card]")
        await expect(cards).to_have_count(2, timeout=SEEN)
        new = cards.first
        assert await new.get_attribute("data-call-id") != first_id
        await expect(new.locator(".who")).to_have_text("OOO Romashka", timeout=SEEN)
        await expect(status).to_have_attribute("data-status", "answered", timeout=SEEN)

        async def linked() -> bool:
            stored = await CallRepository(r.db).by_originate(sent.action_id or "")
            return len(stored) == 1 and stored[0].record.ended_at is not None

        await wait_until(linked)


async def test_a_callbacks_name_and_number_side_by_side_keep_a_gap(
    db: Database, browser: Browser, traces_dir: object
) -> None:
    """On a desk the callback list writes «Unknown» and «+7 903 846-45-06» apart, not «Unknown+7 903 846-45-06»."""
    async with rig(db, browser, traces_dir) as r:
        anna = await ManagerRepository(db).by_login("anna")
        assert anna is not None
        now = datetime.now(UTC)
        async with db.session() as session:
            session.add(
                TaskRow(
                    kind="callback",
                    phone="+79038464506",
                    manager_id=anna.id,
                    title="",
                    status="open",
                    due_at=now + timedelta(hours=2),
                    created_at=now,
                    updated_at=now,
                )
            )
        page = await r.page_for("anna")
        await page.click("a[data-view=callbacks]")
        party = page.locator("[data-testid=callback-row] .cb-party")
        await expect(party.locator(".phone-number")).to_have_text("+7 903 846-45-06", timeout=SEEN)
        name = await party.locator("strong").bounding_box()
        number = await party.locator(".phone").bounding_box()
        assert name is not None
        assert number is not None
        beside = number["y"] < name["y"] + name["height"]
        assert not beside or number["x"] >= name["x"] + name["width"] + 4, (name, number)


async def test_a_failed_call_from_the_search_box_is_said_on_the_page(
    db: Database, browser: Browser, traces_dir: object
) -> None:
    """Anna finds the client in the search box and calls; her phone does not answer: the page says so."""
    async with rig(db, browser, traces_dir) as r:
        r.ami.originate_outcome = "no-answer"
        anna = await r.page_for("anna")
        await anna.click("a[data-view=callbacks]")
        await anna.fill("[data-testid=search-input]", "Romashka")
        hit = anna.locator("[data-testid=search-hit]")
        await expect(hit).to_have_count(1, timeout=SEEN)
        await hit.locator("[data-testid=dial-button]").click()
        status = anna.locator("[data-testid=dial-status]")
        await expect(status).to_have_attribute("data-status", "no_answer", timeout=SEEN)
        await expect(status).to_contain_text("did not answer")
        assert [m.get("Channel") for m in r.ami.originates] == ["PJSIP/101"]
        assert await CallRepository(r.db).between() == []


async def test_clicking_the_number_on_a_deal_rings_my_phone_for_the_deals_client(
    db: Database, browser: Browser, traces_dir: object
) -> None:
    """Anna opens her deal in the pipeline: its client's number is written +7 903 123-45-67; her click reaches
    the server, which sends the PBX an Originate from her phone 101 for that number (dial rule +7 → 8)."""
    async with rig(db, browser, traces_dir) as r:
        anna = await r.page_for("anna")
        await anna.click("a[data-view=deals]")
        deal = anna.locator("[data-testid=pipeline] [data-testid=deal-card]").filter(has_text="Tiles")
        await expect(deal.locator(".phone-number")).to_have_text(["+7 903 123-45-67"], timeout=SEEN)
        await deal.locator("[data-testid=dial-button]").click()
        await wait_until(_originated(r.ami))
        (sent,) = r.ami.originates
        assert (sent.get("Channel"), sent.get("Exten")) == ("PJSIP/101", "89031234567")
        status = anna.locator("[data-testid=dial-status]")
        await expect(status).to_contain_text("+7 903 123-45-67", timeout=SEEN)


def _originated(ami: FakeAmiServer) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(ami.originates)

    return check
