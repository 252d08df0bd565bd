"""amoCRM against the strict loopback fake over real HTTP: authorize, every trace as one call (on its contact, or
in Unsorted when no contact has the number), the 7 requests/s limit kept, expired tokens refreshed, an outage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from crmtel.amocrm.client import AmoClient, AmoError
from crmtel.amocrm.fake import FakeAmoCrm
from crmtel.amocrm.routing import AmoSource
from crmtel.amocrm.service import ANSWERED, NOT_REACHED, AmoCrmSink, _retry_or_fail
from crmtel.calls.service import CallService
from crmtel.config import AmoCrmSettings, CallsSettings, OutboxSettings, RoutingSettings
from crmtel.connectors.models import Verdict
from crmtel.connectors.routing import CrmResponsible
from crmtel.connectors.service import ConnectorService
from crmtel.routing.models import RouteKind
from crmtel.routing.service import RoutingService
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import ConnectorTokenRow
from crmtel.store.outbox import OutboxRepository, SealedTokens
from crmtel.store.parties import PartyRepository
from tests.fixtures.daemon import crmtel_cli, write_config
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.traces import BASE_TIME, SCENARIOS, load_expected, load_messages

FAST = OutboxSettings(
    retry_min_seconds=0.05, retry_max_seconds=0.3, poll_seconds=0.05, backlog_seconds=0.1, lease_seconds=5
)
USERS = {"101": 501, "102": 502, "103": 503, "104": 504}


@contextlib.asynccontextmanager
async def _account() -> AsyncIterator[FakeAmoCrm]:
    fake = FakeAmoCrm(
        client_id="amo-client", client_secret="amo-secret-0123456789", redirect_uri="https://x/cb"
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def _settings(fake: FakeAmoCrm) -> AmoCrmSettings:
    return AmoCrmSettings(
        account=fake.url,
        client_id=fake.client_id,
        client_secret=SecretStr(fake.client_secret),
        redirect_uri=fake.redirect_uri,
        users=USERS,
    )


async def _drive(service: CallService, scenarios: Sequence[str]) -> None:
    for i, scenario in enumerate(scenarios):
        for item in load_messages(scenario):
            await service.on_event("pbx1", item.message, BASE_TIME + timedelta(seconds=item.t + 60 * i))
        await service.flush()


async def _settled(db: Database) -> bool:
    return set(await OutboxRepository(db).states("amocrm")) <= {"delivered"}


async def test_every_trace_is_one_amocrm_call_on_its_contact_or_in_unsorted(db: Database) -> None:
    """Known numbers land on their contact, unknown ones in Unsorted; one each; the 7/s limit never hit."""
    async with _account() as fake:
        fake.contacts["+79161110001"] = (9001, 501)
        settings = _settings(fake)
        client = AmoClient(settings, SealedTokens(db))
        await client.authorize(fake.new_code())
        sink = AmoCrmSink(settings, client)
        async with ConnectorService([sink], OutboxRepository(db), FAST, node="a") as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await _drive(service, SCENARIOS)
            fake.expire_tokens()  # the day ran out in the middle: refreshed, nothing lost
            await wait_until(lambda: _settled(db), limit=60)
    assert fake.over_limit == 0
    assert sorted(fake.posted) == sorted(fake.calls), "a call was posted twice"
    wanted = {
        f"pbx1:{load_expected(s)['linkedid']}": load_expected(s)
        for s in SCENARIOS
        if load_expected(s)["caller_number"] != "anonymous"
    }
    assert set(fake.calls) == set(wanted)
    for uniq, expected in wanted.items():
        call = fake.calls[uniq]
        assert abs(call.duration - round(expected["talk_seconds"])) <= 1, uniq
        on_contact = expected["caller_number"] == "79161110001"
        assert call.unsorted is not on_contact, uniq
        if on_contact:
            status = ANSWERED if expected["outcome"] == "answered" else NOT_REACHED
            assert call.call_status == status, uniq
            who = expected["answered_by"] or expected["rang"][0]
            assert call.responsible_user_id == USERS[who], uniq
    # Incoming calls rang phones of mapped users: amoCRM showed them the call.
    assert fake.events
    assert all(e["type"] == "phone_call" for e in fake.events)
    async with db.session() as session:
        (sealed,) = (await session.execute(select(ConnectorTokenRow.sealed))).scalars().all()
    tokens = await client.tokens()
    assert tokens is not None
    assert tokens["access_token"] not in sealed


async def test_an_outage_and_expired_tokens_are_retried_until_each_call_lands_once(db: Database) -> None:
    """amoCRM down while the calls end, then every token expired: each call arrives once when it is back."""
    async with _account() as fake:
        settings = _settings(fake)
        client = AmoClient(settings, SealedTokens(db))
        await client.authorize(fake.new_code())
        port = fake.port
        await fake.stop()
        async with ConnectorService(
            [AmoCrmSink(settings, client)], OutboxRepository(db), FAST, node="a"
        ) as c:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=c.tap)
            await _drive(service, SCENARIOS[:3])
            await wait_until(lambda: _retried(c.workers[0].retried), limit=60)
            fake.expire_tokens()
            await fake.start(port)
            await wait_until(lambda: _settled(db), limit=60)
        assert client.refreshes >= 1
    linkedids = {f"pbx1:{load_expected(s)['linkedid']}" for s in SCENARIOS[:3]}
    assert set(fake.calls) == linkedids - {f"pbx1:{load_expected('anonymous-caller')['linkedid']}"}
    assert sorted(fake.posted) == sorted(fake.calls), "a call was posted twice"


async def test_amocrm_validation_errors_name_the_field_and_fail_the_event(db: Database) -> None:
    """The fake answers a call without its phone with amoCRM's documented 400 (validation-errors per request_id);
    crmtel's error names the item and the field, and such an answer fails the event instead of retrying."""
    async with _account() as fake:
        settings = _settings(fake)
        client = AmoClient(settings, SealedTokens(db))
        await client.authorize(fake.new_code())
        bad = [{"request_id": "0", "direction": "inbound", "duration": 5, "source": "crmtel"}]
        with pytest.raises(AmoError) as caught:
            await client.request("POST", "/api/v4/calls", bad)
        await client.aclose()
    assert caught.value.status == 400
    assert "[0] phone: NotBlank" in caught.value.detail
    assert fake.posted == []
    assert _retry_or_fail(caught.value).verdict is Verdict.FAILED


async def _retried(count: int) -> bool:
    return count >= 2


async def test_the_admin_authorizes_with_the_code_amocrm_shows(database_url: str, tmp_path: Path) -> None:
    """`crmtel amocrm authorize CODE` stores the tokens; a spent or wrong code is a one-line refusal."""
    async with _account() as fake:
        code = fake.new_code()
        config = write_config(
            tmp_path / "crmtel.toml",
            {
                "amocrm": {
                    "account": fake.url,
                    "client_id": fake.client_id,
                    "client_secret": fake.client_secret,
                    "redirect_uri": fake.redirect_uri,
                }
            },
            database_url=database_url,
        )
        ok = await crmtel_cli("--config", str(config), "amocrm", "authorize", code, cwd=tmp_path)
        again = await crmtel_cli("--config", str(config), "amocrm", "authorize", code, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "authorized" in ok.stdout
    assert again.returncode == 1
    assert "refused" in again.stdout
    assert fake.client_secret not in ok.stdout + ok.stderr + again.stdout + again.stderr


async def test_routing_asks_amocrm_whose_contact_an_unknown_caller_is_and_fails_open(db: Database) -> None:
    """A contact whose responsible user is 502 (ext 102) is routed to 102; a number nobody has and a down
    account give crmtel's own decision (the default queue)."""
    await ManagerRepository(db).save(login="boris", name="Борис", extensions=("102",))
    async with _account() as fake:
        fake.contacts["+79161110009"] = (9009, 502)
        settings = _settings(fake)
        client = AmoClient(settings, SealedTokens(db))
        await client.authorize(fake.new_code())
        lookup = CrmResponsible(PartyRepository(db), AmoSource(settings, client), db)
        router = RoutingService(lookup, RoutingSettings(deadline_ms=2000, default_queue="retail"))
        known = await router.route("+79161110009", None)
        unknown = await router.route("+79161110008", None)
        await fake.stop()
        await router.close()
        # A fresh lookup (nothing cached): the answer must come from amoCRM, which is down.
        fresh = CrmResponsible(PartyRepository(db), AmoSource(settings, client), db)
        router = RoutingService(fresh, RoutingSettings(deadline_ms=2000, default_queue="retail"))
        down = await router.route("+79161110009", None)
        await router.close()
        await client.aclose()
    assert known is not None
    assert (known.kind, known.target) == (RouteKind.EXTENSION, "102")
    assert unknown is not None
    assert (unknown.kind, unknown.target) == (RouteKind.QUEUE, "retail")
    assert down is not None
    assert (down.kind, down.target) == (RouteKind.QUEUE, "retail")


async def test_the_lists_a_lost_answer_is_checked_against_are_strict_and_paged(db: Database) -> None:
    """The fake's call notes and Unsorted lists refuse an unknown parameter and a limit over 250 as amoCRM does,
    page by page/limit with a next link, and answer 204 when nothing is left."""
    async with _account() as fake:
        fake.contacts["+79161110001"] = (9001, 501)
        client = AmoClient(_settings(fake), SealedTokens(db))
        await client.authorize(fake.new_code())
        calls = [
            {"request_id": str(i), "direction": "inbound", "duration": 1, "source": "crmtel"}
            | {"phone": "+79161110001", "uniq": f"pbx1:{i}"}
            for i in range(3)
        ]
        await client.request("POST", "/api/v4/calls", calls)
        for wrong in ([("filter[type]", "call_in")], [("limit", "251")], [("page", "0")]):
            with pytest.raises(AmoError) as caught:
                await client.request("GET", "/api/v4/contacts/notes", params=wrong)
            assert caught.value.status == 400, wrong
        with pytest.raises(AmoError):
            await client.request("GET", "/api/v4/leads/unsorted", params=[("filter[note_type][]", "call_in")])
        pages = [
            await client.request(
                "GET",
                "/api/v4/contacts/notes",
                params=[("filter[note_type][]", "call_in"), ("limit", "2"), ("page", str(page))],
            )
            for page in (1, 2, 3)
        ]
        outgoing = await client.request(
            "GET", "/api/v4/contacts/notes", params=[("filter[note_type][]", "call_out")]
        )
        leads = await client.request("GET", "/api/v4/leads/notes", params=[("limit", "250")])
        await client.aclose()
    assert [n["params"]["uniq"] for n in pages[0]["_embedded"]["notes"]] == ["pbx1:0", "pbx1:1"]
    assert "next" in pages[0]["_links"]
    assert "next" not in pages[1]["_links"]
    assert [n["params"]["uniq"] for n in pages[1]["_embedded"]["notes"]] == ["pbx1:2"]
    assert pages[2] is None
    assert outgoing is None
    assert leads is None
