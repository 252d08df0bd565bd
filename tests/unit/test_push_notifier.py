"""The notifier: one card lookup per call, names for 'answered by', and a failing store never blocks a ring."""

from __future__ import annotations

import asyncio

from crmtel.domain import CallAnswered, CallRinging, CallRingStopped
from crmtel.errors import StoreUnavailable
from crmtel.push.hub import Hub
from crmtel.push.messages import Card
from crmtel.push.notifier import Notifier
from tests.unit.test_push_hub import take
from tests.unit.test_push_live import CID, T0, end, ring


class FakeCards:
    def __init__(self, *, fail: bool = False, delay: float = 0.0) -> None:
        self.calls = 0
        self.fail = fail
        self.delay = delay

    async def card_for(self, event: CallRinging) -> Card:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise StoreUnavailable("down")
        return Card(kind="client", number="+79031234567", name="OOO Romashka")


class FakeNames:
    async def name_of(self, extension: str) -> str | None:
        return {"103": "Vera Lebedeva"}.get(extension)


async def test_ring_all_builds_the_card_once_and_every_phone_gets_it() -> None:
    """Two phones ringing for one call cost one card lookup, even when the rings are published concurrently."""
    hub, cards = Hub(), FakeCards(delay=0.01)
    notifier = Notifier(hub, cards, FakeNames())
    boris, vera = hub.connect(2, ["102"]), hub.connect(3, ["103"])
    await asyncio.gather(notifier.publish(ring("102")), notifier.publish(ring("103")))
    assert cards.calls == 1
    for conn in (boris, vera):
        (msg,) = await take(conn)
        assert msg["card"]["name"] == "OOO Romashka"


async def test_answer_names_the_winner_for_the_losers() -> None:
    """The ring-all loser's card closes with the answering manager's name."""
    hub = Hub()
    notifier = Notifier(hub, FakeCards(), FakeNames())
    boris = hub.connect(2, ["102"])
    await notifier.publish(ring("102"))
    await notifier.publish(ring("103"))
    await notifier.publish(CallAnswered(call_id=CID, extension="103", at=T0))
    await notifier.publish(
        CallRingStopped(call_id=CID, extension="102", reason="answered elsewhere", answered_by="103", at=T0)
    )
    await notifier.publish(end(rang=("102", "103"), answered_by="103"))
    msgs = await take(boris)
    assert [m["type"] for m in msgs] == ["call.ringing", "call.answered", "call.ended"]
    assert msgs[1]["answered_by_name"] == "Vera Lebedeva"
    assert msgs[1]["by_me"] is False


async def test_store_failure_still_rings_with_an_unavailable_card() -> None:
    """When the store is down the phone's page still pops up, with a card saying the data is unavailable."""
    hub = Hub()
    notifier = Notifier(hub, FakeCards(fail=True), FakeNames())
    boris = hub.connect(2, ["102"])
    await notifier.publish(ring("102"))
    (msg,) = await take(boris)
    assert msg["card"]["kind"] == "unavailable"
    assert msg["caller_number"] == "79031234567"


async def test_slow_store_is_cut_off_by_the_card_timeout() -> None:
    """A card lookup slower than the timeout does not hold the popup back."""
    hub = Hub()
    notifier = Notifier(hub, FakeCards(delay=1.0), FakeNames(), card_timeout=0.02)
    boris = hub.connect(2, ["102"])
    async with asyncio.timeout(0.5):
        await notifier.publish(ring("102"))
    (msg,) = await take(boris)
    assert msg["card"]["kind"] == "unavailable"
