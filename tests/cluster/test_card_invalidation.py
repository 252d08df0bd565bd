"""Two nodes' card caches on one PostgreSQL and one Redis: a write on node A shows on node B's next card."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from redis.asyncio import Redis

from crmtel.cluster.cards import CardInvalidations
from crmtel.crm.models import Kind, PartyChanges, Viewer
from crmtel.push.cardcache import CachedCards, CardCache, follow_card_epoch
from crmtel.store.calls import CallRepository
from crmtel.store.crm_parties import PartyCards
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository, NewDeal
from tests.cluster.conftest import REDIS_URL
from tests.fixtures.fake_ami import wait_for
from tests.integration.test_card_cache import NUMBER, CountingCards, _client, ended_call, ringing


async def settled(a: Node, b: Node) -> None:
    """Wait until node B has heard every change node A published."""
    await wait_for(lambda: a.channel.pending == 0 and b.channel.received == a.channel.sent)


@dataclass
class Node:
    db: Database
    cache: CardCache
    cards: CachedCards
    source: CountingCards
    channel: CardInvalidations


@asynccontextmanager
async def node(
    database_url: str, name: str, stream: str, *, numbered: bool = False, grace: float = 2.0
) -> AsyncIterator[Node]:
    """One node's store, card cache and invalidation channel, as ``crmtel.app`` composes them (``numbered``:
    with its changes numbered by the card epoch and the epoch followed, as a cluster node runs)."""
    db = Database(database_url)
    redis = Redis.from_url(REDIS_URL, client_name=f"{stream.replace(':', '-')}-{name}")
    cache = CardCache(100)
    cache.distrust()
    source = CountingCards(db)
    channel = CardInvalidations(redis, f"{stream}:cards", name, cache)
    channel.ledger.grace = grace
    db.on_change(cache.forget)
    db.on_change(channel.publish)
    tasks = [asyncio.create_task(channel.run(), name=f"cards-{name}")]
    if numbered:
        db.number_changes()
        since = await db.card_epoch()
        tasks.append(
            asyncio.create_task(
                follow_card_epoch(db, 0.05, since=since, ledger=channel.ledger), name=f"epoch-{name}"
            )
        )
    try:
        await asyncio.wait_for(channel.subscribed.wait(), 5)
        yield Node(db, cache, CachedCards(source, cache), source, channel)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
        await db.dispose()


async def test_an_edit_a_deal_and_a_call_on_node_a_show_on_node_b(
    database_url: str, stream_name: str
) -> None:
    """Node B keeps the card in memory; a CRM edit, a deal and a call written on node A each reach B's cache
    over the channel, and B's next card shows them (B reading the store again only then)."""
    async with node(database_url, "a", stream_name) as a, node(database_url, "b", stream_name) as b:
        anna, client = await _client(a.db)
        await settled(a, b)
        before = await b.cards.card_for(ringing())
        assert before.name == "ООО «Ромашка»"
        assert await b.cards.card_for(ringing()) == before
        assert b.source.reads == 1

        await PartyCards(a.db).edit(
            Kind.CLIENT, client, Viewer(anna, head=True), PartyChanges(name="ООО «Лютик»")
        )
        await wait_for(lambda: len(b.cache) == 0)
        assert (await b.cards.card_for(ringing())).name == "ООО «Лютик»"

        received = b.channel.received
        await DealRepository(a.db).add(NewDeal("Поставка", Decimal("1000"), anna, client_id=client))
        await wait_for(lambda: b.channel.received > received)
        assert [d.title for d in (await b.cards.card_for(ringing())).open_deals] == ["Поставка"]

        received = b.channel.received
        await CallRepository(a.db).upsert(ended_call("5.1", NUMBER), None)
        await wait_for(lambda: b.channel.received > received)
        assert [c.started_at for c in (await b.cards.card_for(ringing())).recent_calls] == [
            datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
        ]
        assert b.source.reads == 4


async def test_a_node_cut_from_the_channel_reads_the_store_until_it_is_back(
    database_url: str, stream_name: str
) -> None:
    """While node B's subscription is down it may miss A's changes: it serves no card from memory, and once
    subscribed again it starts from an empty cache."""
    async with node(database_url, "a", stream_name) as a, node(database_url, "b", stream_name) as b:
        await _client(a.db)
        await settled(a, b)
        await b.cards.card_for(ringing())
        await b.cards.card_for(ringing())
        assert b.source.reads == 1
        killer = Redis.from_url(REDIS_URL)
        try:  # only node B's connections (by name: the Redis is shared)
            mine = f"{stream_name.replace(':', '-')}-b"
            for client in await killer.client_list():
                if client.get("name") == mine:
                    await killer.client_kill_filter(_id=client["id"])
        finally:
            await killer.aclose()
        await wait_for(lambda: not b.cache.trusted)
        await b.cards.card_for(ringing())
        assert b.source.reads == 2
        await wait_for(lambda: b.cache.trusted, limit=10)
        await b.cards.card_for(ringing())
        await b.cards.card_for(ringing())
        assert b.source.reads == 3


async def test_a_change_committed_but_never_announced_reaches_the_other_nodes_cards(
    database_url: str, stream_name: str
) -> None:
    """Node A commits a CRM edit and dies before publishing it: node B, which announced nothing missing, finds
    the unannounced card epoch and forgets its cards within the ledger's grace; B's next card is fresh. An
    announced change (node C's call of another number) forgets only its own cards."""
    first = Database(database_url)
    try:
        anna, client = await _client(first)
    finally:
        await first.dispose()
    async with (
        node(database_url, "b", stream_name, numbered=True, grace=0.5) as b,
        node(database_url, "c", stream_name, numbered=True, grace=0.5) as c,
    ):
        await b.cards.card_for(ringing())
        assert (await b.cards.card_for(ringing())).name == "ООО «Ромашка»"
        assert b.source.reads == 1

        # Announced: C's call of another number reaches B over the channel; B keeps NUMBER's card.
        received = b.channel.received
        await CallRepository(c.db).upsert(ended_call("6.1", "+79161110002"), None)
        await wait_for(lambda: b.channel.received > received)
        await asyncio.sleep(1.0)  # past the grace: an announced epoch is never taken for a missed one
        assert b.channel.ledger.gaps == 0
        await b.cards.card_for(ringing())
        assert b.source.reads == 1

        # Node A: its changes numbered and told to its own cache, but it is killed between its commit and its
        # publish (it never sends).
        a = Database(database_url)
        a.on_change(CardCache().forget)
        a.number_changes()
        try:
            await PartyCards(a).edit(
                Kind.CLIENT, client, Viewer(anna, head=True), PartyChanges(name="ООО «Лютик»")
            )
        finally:
            await a.dispose()
        await wait_for(lambda: len(b.cache) == 0)
        # B found the gap itself, or C did first and told B to forget everything.
        assert b.channel.ledger.gaps + c.channel.ledger.gaps >= 1
        assert (await b.cards.card_for(ringing())).name == "ООО «Лютик»"
        assert b.source.reads == 2
