"""The ringing card from memory: served without the store once read, and forgotten by every write that changes it."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update

from crmtel.crm.models import Kind, PartyChanges, Viewer
from crmtel.domain import CallRecord, CallRinging, Direction, Outcome, PartyKind
from crmtel.exchange.importer import ImportKind, import_file
from crmtel.push.cardcache import CachedCards, CardCache, follow_card_epoch
from crmtel.push.cards import StoreCards
from crmtel.push.messages import Card
from crmtel.store.call_results import CallResults
from crmtel.store.calls import CallRepository
from crmtel.store.crm_merge import PartyMerger
from crmtel.store.crm_parties import PartyCards
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository, NewDeal
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import ClientRow
from crmtel.store.parties import NewClient, PartyRepository
from tests.fixtures.fake_ami import wait_until

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
NUMBER = "+79161110001"


class CountingCards:
    """The store's cards, counting every read."""

    def __init__(self, db: Database) -> None:
        self.store = StoreCards(db)
        self.reads = 0

    async def card_for(self, event: CallRinging) -> Card:
        self.reads += 1
        return await self.store.card_for(event)


def ringing(number: str = NUMBER, linkedid: str = "9.1") -> CallRinging:
    return CallRinging(
        f"pbx1:{linkedid}", "pbx1", linkedid, "101", Direction.INBOUND, number, None, "4951234567", None, T0
    )


def ended_call(linkedid: str, number: str, *, party: int | None = None, minutes: int = 0) -> CallRecord:
    started = T0 + timedelta(minutes=minutes)
    return CallRecord(
        pbx="pbx1",
        linkedid=linkedid,
        direction=Direction.INBOUND,
        caller_number=number,
        caller_name=None,
        dialled="4951234567",
        started_at=started,
        ended_at=started + timedelta(seconds=30),
        outcome=Outcome.ANSWERED,
        answered_by="101",
        talk_seconds=25,
        party_kind=PartyKind.CLIENT if party is not None else None,
        party_id=party,
    )


def cached(db: Database, size: int = 100) -> tuple[CachedCards, CountingCards]:
    source = CountingCards(db)
    cache = CardCache(size)
    db.on_change(cache.forget)
    return CachedCards(source, cache), source


async def _client(db: Database) -> tuple[int, int]:
    anna = await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    created = await PartyRepository(db).add_client(
        NewClient(name="ООО «Ромашка»", phones=(NUMBER, "+74951110002"), manager_id=anna.id)
    )
    return anna.id, created.id


async def test_a_second_ring_is_served_from_memory_and_a_crm_edit_is_seen_at_once(db: Database) -> None:
    """The second ring of a number reads nothing from the store; a card edit in the CRM workspace (name,
    turnover) shows on the very next ring, read again from the store."""
    anna, client = await _client(db)
    cards, source = cached(db)
    first = await cards.card_for(ringing())
    assert (first.name, first.manager_name) == ("ООО «Ромашка»", "Анна Смирнова")
    assert (await cards.card_for(ringing(linkedid="9.2"))) == first
    assert source.reads == 1
    await PartyCards(db).edit(
        Kind.CLIENT,
        client,
        Viewer(anna, head=True),
        PartyChanges(name="ООО «Лютик»", turnover=Decimal("5000")),
    )
    card = await cards.card_for(ringing(linkedid="9.3"))
    assert (card.name, card.turnover) == ("ООО «Лютик»", Decimal("5000.00"))
    assert source.reads == 2


async def test_a_stored_call_refreshes_the_cards_it_shows_on_and_no_other(db: Database) -> None:
    """A call of the number, or of its party's other number, forgets the card once it has ended (its last
    calls change); a call of an unrelated number, a result picked on a call, or the number's call while it is
    still ringing (a card lists ended calls only) leaves the card in memory."""
    _anna, client = await _client(db)
    cards, source = cached(db)
    assert (await cards.card_for(ringing())).recent_calls == ()
    calls = CallRepository(db)
    await calls.upsert(ended_call("1.1", "+79990000000"), None)
    row = await calls.upsert(ended_call("1.2", "+79990000001"), None)
    await CallResults(db).set(row, "sale", 1, T0)
    live = replace(ended_call("1.3", NUMBER[1:]), ended_at=None, outcome=None)
    await calls.upsert(live, {"state": "ringing"})  # the number's next call, still ringing
    await cards.card_for(ringing())
    assert source.reads == 1
    await calls.upsert(ended_call("1.3", NUMBER[1:]), None)  # stored without the "+"
    assert len((await cards.card_for(ringing())).recent_calls) == 1
    await calls.upsert(ended_call("1.4", "+74951110002", party=client, minutes=5), None)
    recent = (await cards.card_for(ringing())).recent_calls
    assert [c.started_at for c in recent] == [T0 + timedelta(minutes=5), T0]
    assert source.reads == 3


async def test_a_deal_a_manager_rename_a_merge_and_an_import_each_forget_the_card(
    db: Database, tmp_path: Path
) -> None:
    """Opening a deal, renaming the client's manager, merging another client in and an import of clients
    (written on a bare connection) each show on the next ring."""
    anna, client = await _client(db)
    cards, source = cached(db)
    await cards.card_for(ringing())
    await DealRepository(db).add(NewDeal("Поставка", Decimal("1000"), anna, client_id=client))
    assert [d.title for d in (await cards.card_for(ringing())).open_deals] == ["Поставка"]
    await ManagerRepository(db).save(login="anna", name="Анна Петрова", extensions=("101",))
    assert (await cards.card_for(ringing())).manager_name == "Анна Петрова"
    other = await PartyRepository(db).add_client(NewClient(name="Дубль", phones=("+79160000009",)))
    await cards.card_for(ringing(number="+79160000009"))
    await PartyMerger(db).merge(Kind.CLIENT, client, Kind.CLIENT, other.id, Viewer(anna, head=True))
    merged = await cards.card_for(ringing(number="+79160000009"))
    assert merged.party_id == client
    reads = source.reads
    csv = tmp_path / "clients.csv"
    csv.write_text("name,phones\nООО «Новый»,+79035550001\n", encoding="utf-8")
    await cards.card_for(ringing(number="+79035550001"))
    await import_file(db, ImportKind.CLIENTS, csv)
    assert (await cards.card_for(ringing(number="+79035550001"))).name == "ООО «Новый»"
    assert source.reads == reads + 2


async def _failing_write(db: Database, client: int) -> None:
    async with db.session() as session:
        await session.execute(update(ClientRow).where(ClientRow.id == client).values(name="x"))
        raise RuntimeError("the transaction fails after its write")


async def test_a_rolled_back_write_forgets_nothing(db: Database) -> None:
    """A transaction that fails after writing a client is rolled back and leaves the cache as it was."""
    _anna, client = await _client(db)
    cards, source = cached(db)
    await cards.card_for(ringing())
    with pytest.raises(RuntimeError):
        await _failing_write(db, client)
    await cards.card_for(ringing())
    assert source.reads == 1


CLI = "import sys; from crmtel.cli import main; sys.exit(main(sys.argv[1:]))"


async def test_a_manager_renamed_by_the_cli_in_another_process_shows_on_a_later_ring(db: Database) -> None:
    """`crmtel manager add` renaming the client's manager in another process while the daemon runs: the
    daemon's next ring after its epoch read shows the new name (the card stayed stale 300 s before)."""
    await _client(db)
    cards, _source = cached(db)
    assert (await cards.card_for(ringing())).manager_name == "Анна Смирнова"
    follower = asyncio.create_task(
        follow_card_epoch(db, interval=0.05, since=await db.card_epoch()), name="test-card-epoch"
    )
    try:
        done = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLI,
            "manager",
            "add",
            "--login",
            "anna",
            "--name",
            "Анна Петрова",
            "--extension",
            "101",
            env=dict(os.environ, CRMTEL_DATABASE_URL=str(db.url)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await done.communicate()
        assert done.returncode == 0, err

        async def renamed() -> bool:
            return (await cards.card_for(ringing(linkedid="9.2"))).manager_name == "Анна Петрова"

        await wait_until(renamed)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
