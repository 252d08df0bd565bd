"""Routing by Bitrix24's responsible manager (searchCrmEntities) over real HTTP: found, cached, failing open."""

from __future__ import annotations

from pathlib import Path

from crmtel.bitrix24.client import Bitrix24Client
from crmtel.bitrix24.routing import Bitrix24Responsible
from crmtel.bitrix24.service import Users
from crmtel.bitrix24.tokens import TokenStore
from crmtel.config import RoutingSettings
from crmtel.routing.models import RouteKind
from crmtel.routing.service import RoutingService
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.outbox import SealedTokens
from crmtel.store.parties import PartyRepository
from tests.fixtures.bitrix24 import fake_portal, install, settings_for
from tests.fixtures.fake_ami import wait_for

SETTINGS = RoutingSettings(deadline_ms=2000, default_queue="retail")


async def test_an_unknown_caller_goes_to_the_manager_bitrix24_names_and_the_answer_is_cached(
    db: Database, tmp_path: Path
) -> None:
    """crmtel knows nobody; the portal's contact is Борис's (internal 102): routed to 102; then from the cache."""
    await ManagerRepository(db).save(login="boris", name="Борис", extensions=("102",))
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = await install(db, fake, settings, tmp_path)
        fake.entities["79161110001"] = ("CONTACT", 651, 12)
        lookup = Bitrix24Responsible(PartyRepository(db), sink.client, sink.users, db)
        router = RoutingService(lookup, SETTINGS)
        first = await router.route("+79161110001", "4951234567")
        again = await router.route("+79161110001", "4951234567")
        unknown = await router.route("+79035550000", "4951234567")
        await router.close()
        await sink.aclose()
    assert first is not None
    assert (first.kind, first.target) == (RouteKind.EXTENSION, "102")
    assert again == first
    assert unknown is not None
    assert unknown.kind is RouteKind.QUEUE
    assert fake.requests.count("telephony.externalcall.searchcrmentities") == 2
    assert (lookup.hits, lookup.misses) == (1, 2)


async def test_a_slow_or_absent_portal_fails_open_within_the_deadline(db: Database, tmp_path: Path) -> None:
    """The deadline bounds the portal: 0.4 s answers fit a 2 s deadline; 0.8 s answers miss a 0.3 s one (no
    decision: the dialplan's default) yet land in the cache for the next call; a portal that is down gives
    crmtel's own decision."""
    await ManagerRepository(db).save(login="boris", name="Борис", extensions=("102",))
    async with fake_portal() as fake:
        settings = settings_for(fake)
        sink = await install(db, fake, settings, tmp_path)
        fake.entities["79161110001"] = ("CONTACT", 651, 12)
        fake.entities["79161110002"] = ("CONTACT", 652, 12)
        lookup = Bitrix24Responsible(PartyRepository(db), sink.client, sink.users, db)
        patient = RoutingService(lookup, RoutingSettings(deadline_ms=2000))
        hasty = RoutingService(lookup, RoutingSettings(deadline_ms=300))
        fake.latency = 0.4
        in_time = await patient.route("+79161110001", None)
        fake.latency = 0.8
        late = await hasty.route("+79161110002", None)
        await wait_for(lambda: lookup.cached("+79161110002"))
        fake.latency = 0.0
        cached = await hasty.route("+79161110002", None)
        for router in (patient, hasty):
            await router.close()
        await fake.stop()
        client = Bitrix24Client(
            settings, TokenStore(SealedTokens(db), settings.client_secret.get_secret_value())
        )
        down_router = RoutingService(
            Bitrix24Responsible(PartyRepository(db), client, Users(client), db), SETTINGS
        )
        down = await down_router.route("+79161110003", None)
        await down_router.close()
        await client.aclose()
        await sink.aclose()
    assert in_time is not None
    assert in_time.target == "102"
    assert late is None
    assert cached is not None
    assert cached.target == "102"
    assert down is not None
    assert (down.kind, down.target) == (RouteKind.QUEUE, "retail")
