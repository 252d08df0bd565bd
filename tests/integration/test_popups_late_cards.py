"""Cards of calls that rang first at a phone no page on this node watched (e8d9464 reads none for those), over a
real websocket: a phone that picks the call up, and a queue call's first phone whose page opens later, still get
the card (review28k)."""

from __future__ import annotations

import pytest

from crmtel.domain import CallAnswered, CallRingStopped, StopReason
from crmtel.store.db import Database
from tests.integration.test_web_app import nothing_arrives, receive, running_app
from tests.unit.test_push_live import CID, T0, end, ring


async def test_a_phone_picking_up_a_call_that_rang_unwatched_gets_its_card(db: Database) -> None:
    """Anna's phone rings with no page of hers open; Boris picks it up (*8): his page gets the card with the
    answer — before, no card was read for the call at all and Boris's card stayed number-only."""
    async with running_app(db) as rig, rig.browser("boris") as boris:
        ws = await boris.ws_connect("/ws")
        assert (await receive(ws))["type"] == "hello"
        await rig.notifier.publish(ring("101"))
        await rig.notifier.publish(
            CallRingStopped(CID, "101", StopReason.ANSWERED_ELSEWHERE, answered_by="102", at=T0)
        )
        await rig.notifier.publish(CallAnswered(call_id=CID, extension="102", at=T0))
        await rig.notifier.idle()
        answered = await receive(ws)
        assert (answered["type"], answered["by_me"]) == ("call.answered", True)
        assert answered["card"] is not None, "the picked-up call's card was never read"
        assert answered["card"]["kind"] == "new_lead"
        assert await nothing_arrives(ws), "the card came twice"
        await rig.notifier.publish(end(rang=("101",), answered_by="102"))
        assert (await receive(ws))["type"] == "call.ended"
        await ws.close()


async def test_a_queue_calls_first_phone_opened_later_gets_the_card_read_for_the_second(db: Database) -> None:
    """A queue call rings Anna (no page open) then Boris (page open: the card is read); Anna opens her page while
    it still rings: her popup carries that card — before, her snapshot had none and no call.card ever came."""
    async with running_app(db) as rig, rig.browser("boris") as boris, rig.browser("anna") as anna:
        ws_b = await boris.ws_connect("/ws")
        assert (await receive(ws_b))["type"] == "hello"
        await rig.notifier.publish(ring("101"))
        await rig.notifier.publish(ring("102"))
        await rig.notifier.idle()
        assert (await receive(ws_b))["card"]["kind"] == "new_lead"
        ws_a = await anna.ws_connect("/ws")
        assert (await receive(ws_a))["type"] == "hello"
        popup = await receive(ws_a)
        await rig.notifier.idle()
        if popup["card"] is None:
            try:
                update = await receive(ws_a)
            except TimeoutError:
                pytest.fail("Anna's popup got no card, and no call.card followed")
            assert update["type"] == "call.card"
            popup = {**popup, "card": update["card"]}
        assert (popup["type"], popup["extension"]) == ("call.ringing", "101")
        assert popup["card"]["kind"] == "new_lead"
        assert await nothing_arrives(ws_a), "the card came twice"
        assert await nothing_arrives(ws_b)
        await ws_a.close()
        await ws_b.close()
