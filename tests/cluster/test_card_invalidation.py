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
from crmtel.push.cardcache import CachedCards, CardCache
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
async def node(database_url: str, name: str, stream: str) -> AsyncIterator[Node]:
    """One node's store, card cache and invalidation channel, as ``crmtel.app`` composes them."""
    db = Database(database_url)
    redis = Redis.from_url(REDIS_URL, client_name=f"{stream.replace(':', '-')}-{name}")
    cache = CardCache(100)
    cache.distrust()
    source = CountingCards(db)
    channel = CardInvalidations(redis, f"{stream}:cards", name, cache)
    db.on_change(cache.forget)
    db.on_change(channel.publish)
    task = asyncio.create_task(channel.run(), name=f"cards-{name}")
    try:
        await asyncio.wait_for(channel.subscribed.wait(), 5)
        yield Node(db, cache, CachedCards(source, cache), source, channel)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
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
