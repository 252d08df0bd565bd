"""The notifier: one card lookup per call, order kept per call, and the store never holds up the AMI pipeline."""

from __future__ import annotations

import asyncio

from crmtel.domain import CallAnswered, CallRinging, CallRingStopped, StopReason
from crmtel.errors import StoreUnavailable
from crmtel.push.hub import Hub
from crmtel.push.messages import Card
from crmtel.push.notifier import Notifier
from tests.unit.test_push_hub import take
from tests.unit.test_push_live import CID, T0, end, ring


class FakeCards:
    def __init__(self, *, fail: Exception | None = None, delay: float = 0.0) -> None:
        self.calls = 0
        self.fail = fail
        self.delay = delay

    async def card_for(self, event: CallRinging) -> Card:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise self.fail
        return Card(kind="client", number="+79031234567", name="OOO Romashka")


class FakeNames:
    async def name_of(self, extension: str) -> str | None:
        return {"103": "Vera Lebedeva"}.get(extension)


async def test_ring_all_builds_the_card_once_and_every_phone_gets_it() -> None:
    """Two phones ringing for one call cost one card lookup; both pages get the card."""
    hub, cards = Hub(), FakeCards(delay=0.01)
    async with Notifier(hub, cards, FakeNames(), card_wait=1.0) as notifier:
        boris, vera = hub.connect(2, ["102"]), hub.connect(3, ["103"])
        await notifier.publish(ring("102"))
        await notifier.publish(ring("103"))
        await notifier.idle()
        assert cards.calls == 1
        for conn in (boris, vera):
            (msg,) = await take(conn)
            assert msg["card"]["name"] == "OOO Romashka"


async def test_publish_never_waits_for_the_store_and_keeps_each_calls_order() -> None:
    """While the card is looked up, publish returns at once; the call's later events follow the ringing in order."""
    hub = Hub()
    async with Notifier(hub, FakeCards(delay=0.2), FakeNames(), card_wait=1.0) as notifier:
        boris = hub.connect(2, ["102"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        await notifier.publish(ring("102"))
        await notifier.publish(ring("103"))
        await notifier.publish(CallAnswered(call_id=CID, extension="103", at=T0))
        await notifier.publish(
            CallRingStopped(
                call_id=CID, extension="102", reason=StopReason.ANSWERED_ELSEWHERE, answered_by="103", at=T0
            )
        )
        await notifier.publish(end(rang=("102", "103"), answered_by="103"))
        assert loop.time() - started < 0.05
        assert await take(boris) == []
        await notifier.idle()
        msgs = await take(boris)
        assert [m["type"] for m in msgs] == ["call.ringing", "call.answered", "call.ended"]
        assert msgs[0]["card"]["name"] == "OOO Romashka"
        assert msgs[1]["answered_by_name"] == "Vera Lebedeva"
        assert msgs[1]["by_me"] is False


async def test_store_failure_still_rings_with_an_unavailable_card() -> None:
    """When the store is down the phone's page still pops up, with a card saying the data is unavailable."""
    hub = Hub()
    async with Notifier(hub, FakeCards(fail=StoreUnavailable("down")), FakeNames()) as notifier:
        boris = hub.connect(2, ["102"])
        await notifier.publish(ring("102"))
        await notifier.idle()
        (msg,) = await take(boris)
        assert msg["card"]["kind"] == "unavailable"
        assert msg["caller_number"] == "79031234567"


async def test_a_bug_in_card_building_does_not_lose_the_popup() -> None:
    """An unexpected error while building a card is logged and the popup still goes out."""
    hub = Hub()
    async with Notifier(hub, FakeCards(fail=ValueError("bug")), FakeNames()) as notifier:
        boris = hub.connect(2, ["102"])
        await notifier.publish(ring("102"))
        await notifier.idle()
        (msg,) = await take(boris)
        assert msg["card"]["kind"] == "unavailable"


async def test_slow_store_pops_up_at_once_and_the_card_follows() -> None:
    """A card slower than card_wait: the popup goes out with the caller ID only, then call.card fills it in."""
    hub = Hub()
    async with Notifier(hub, FakeCards(delay=0.3), FakeNames(), card_wait=0.01) as notifier:
        boris, vera = hub.connect(2, ["102"]), hub.connect(3, ["103"])
        await notifier.publish(ring("102"))
        await notifier.publish(ring("103"))
        await asyncio.sleep(0.1)
        popups = await take(boris) + await take(vera)
        assert [(m["type"], m["card"]) for m in popups] == [("call.ringing", None), ("call.ringing", None)]
        await notifier.idle()
        for conn in (boris, vera):
            (update,) = await take(conn)
            assert (update["type"], update["card"]["name"]) == ("call.card", "OOO Romashka")
        late = hub.connect(4, ["102"])
        (snapshot,) = await take(late)
        assert snapshot["card"]["name"] == "OOO Romashka"


async def test_store_that_never_answers_ends_in_an_unavailable_card() -> None:
    """A lookup past card_timeout is given up: the popup is already out and its card says unavailable."""
    hub = Hub()
    async with Notifier(hub, FakeCards(delay=5.0), FakeNames(), card_timeout=0.05) as notifier:
        boris = hub.connect(2, ["102"])
        await notifier.publish(ring("102"))
        async with asyncio.timeout(1.0):
            await notifier.idle()
        popup, update = await take(boris)
        assert popup["card"] is None
        assert update["card"]["kind"] == "unavailable"


async def test_close_cancels_lookups_in_flight_and_ignores_later_events() -> None:
    """Shutdown cancels and awaits the card tasks; events published after close go nowhere."""
    hub = Hub()
    notifier = Notifier(hub, FakeCards(delay=10.0), FakeNames())
    boris = hub.connect(2, ["102"])
    await notifier.publish(ring("102"))
    async with asyncio.timeout(1.0):
        await notifier.aclose()
    await notifier.publish(ring("102", call_id="pbx1:9.9"))
    assert await take(boris) == []


async def test_no_card_is_read_for_a_phone_nobody_here_watches() -> None:
    """A ringing phone without a page on this node (another cluster node's manager) costs no card read."""
    hub, cards = Hub(), FakeCards()
    async with Notifier(hub, cards, FakeNames()) as notifier:
        vera = hub.connect(3, ["103"])
        await notifier.publish(ring("102"))
        await notifier.publish(ring("104", call_id="pbx1:9.9"))
        await notifier.idle()
        assert cards.calls == 0
        assert await take(vera) == []


async def test_a_head_watching_everyone_still_gets_every_card() -> None:
    """A head's page watches every phone, so a ringing call on this node is given its card."""
    hub, cards = Hub(), FakeCards()
    async with Notifier(hub, cards, FakeNames(), card_wait=1.0) as notifier:
        head = hub.connect(1, [], everyone=True)
        await notifier.publish(ring("102"))
        await notifier.idle()
        (msg,) = await take(head)
        assert (cards.calls, msg["card"]["name"]) == (1, "OOO Romashka")


async def test_a_page_connecting_to_a_call_rung_without_a_card_gets_the_card_after_it() -> None:
    """A page opened while its phone rings (no card was built: nobody watched) is sent the card as call.card."""
    hub, cards = Hub(), FakeCards()
    async with Notifier(hub, cards, FakeNames()) as notifier:
        await notifier.publish(ring("102"))
        boris = hub.connect(2, ["102"])
        (snapshot,) = await take(boris)
        assert (snapshot["type"], snapshot["card"]) == ("call.ringing", None)
        await notifier.idle()
        (update,) = await take(boris)
        assert (update["type"], update["card"]["name"]) == ("call.card", "OOO Romashka")
        again = hub.connect(4, ["102"])
        (snapshot,) = await take(again)
        await notifier.idle()
        assert snapshot["card"]["name"] == "OOO Romashka"
        assert (cards.calls, await take(again)) == (1, [])


async def test_a_page_connecting_while_a_slow_card_is_read_waits_for_that_read() -> None:
    """A card slower than card_wait is still being read when a page connects: no second read, both get it."""
    hub, cards = Hub(), FakeCards(delay=0.2)
    async with Notifier(hub, cards, FakeNames(), card_wait=0.01) as notifier:
        boris = hub.connect(2, ["102"])
        await notifier.publish(ring("102"))
        await asyncio.sleep(0.05)
        late = hub.connect(4, ["102"])
        await notifier.idle()
        assert cards.calls == 1
        for conn in (boris, late):
            *_, update = await take(conn)
            assert (update["type"], update["card"]["name"]) == ("call.card", "OOO Romashka")


async def test_a_second_phone_ringing_while_a_slow_card_is_read_gets_it_from_that_read_once() -> None:
    """A queue rings Boris, then Vera while Boris's card (slower than card_wait) is still read: one read, and
    each page is sent the card once (before: a second read, and Boris got call.card twice) (review28k)."""
    hub, cards = Hub(), FakeCards(delay=0.2)
    async with Notifier(hub, cards, FakeNames(), card_wait=0.01) as notifier:
        boris, vera = hub.connect(2, ["102"]), hub.connect(3, ["103"])
        await notifier.publish(ring("102"))
        await asyncio.sleep(0.05)
        await notifier.publish(ring("103"))
        await notifier.idle()
        assert cards.calls == 1
        for conn in (boris, vera):
            msgs = await take(conn)
            assert [m["type"] for m in msgs] == ["call.ringing", "call.card"]
            assert msgs[1]["card"]["name"] == "OOO Romashka"


async def test_a_late_pages_card_read_that_ends_after_the_call_sends_nothing() -> None:
    """A page opened mid-ring waits for a slow card; the call ends first: no call.card after call.ended."""
    hub, cards = Hub(), FakeCards(delay=0.2)
    async with Notifier(hub, cards, FakeNames()) as notifier:
        await notifier.publish(ring("102"))
        boris = hub.connect(2, ["102"])
        await notifier.publish(end(rang=("102",), answered_by=None))
        await notifier.idle()
        assert cards.calls == 1
        assert [m["type"] for m in await take(boris)] == ["call.ringing", "call.ended"]
