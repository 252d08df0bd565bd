"""What a manager does with a call through the API: result notes, leads, deals, callbacks, recordings."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import update

from crmtel.domain import Category
from crmtel.recordings import locate as recording_path
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository
from crmtel.store.models import CallRow
from crmtel.store.notes import NoteRepository
from crmtel.store.parties import NewClient, NewLead, PartyRepository
from tests.integration.test_web_app import add_call, running_app

HOSTILE = "<img src=x onerror=alert(1)>"


async def test_result_note_is_stored_against_the_call_verbatim(db: Database) -> None:
    """Topic, result and comment (markup included) are stored with the call and read back unchanged."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        call = await add_call(db, linkedid="2.2", rang=("102", "103"), answered_by="103")
        body = {"topic": "Delivery", "result": "Order placed", "comment": HOSTILE}
        async with vera.post("/api/calls/pbx1:2.2/notes", json=body) as r:
            assert r.status == 201
        (note,) = await NoteRepository(db).for_call(call)
        assert (note.topic, note.result, note.comment) == ("Delivery", "Order placed", HOSTILE)
        assert note.manager_id == rig.managers["vera"].id
        async with vera.get("/api/calls/pbx1:2.2") as r:
            assert (await r.json())["notes"][0]["comment"] == HOSTILE


async def test_bad_note_input_is_refused_with_400(db: Database) -> None:
    """Non-JSON bodies, non-text fields, empty and over-long notes are refused; nothing is stored."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        call = await add_call(db, linkedid="2.2", rang=("103",), answered_by="103")
        url = "/api/calls/pbx1:2.2/notes"
        async with vera.post(
            url, data="topic=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ) as r:
            assert r.status == 415
        async with vera.post(url, data="{not json", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
        for body in ({"topic": 5}, {}, {"comment": "x" * 5001}, ["topic"]):
            async with vera.post(url, json=body) as r:
                assert r.status == 400, body
        assert await NoteRepository(db).for_call(call) == []


async def test_lead_from_unknown_caller_is_created_and_linked_to_the_call(db: Database) -> None:
    """An unknown caller becomes this manager's lead with the caller's number, and the call names it."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        await add_call(db, linkedid="2.2", rang=("103",), answered_by="103", caller="79031234567")
        async with vera.post("/api/calls/pbx1:2.2/lead", json={"name": "Pavel", "company": "Romashka"}) as r:
            assert r.status == 201
            lead_id = (await r.json())["id"]
        found = await PartyRepository(db).lookup("+79031234567")
        assert found.best is not None
        assert (found.best.kind.value, found.best.id, found.best.company) == ("lead", lead_id, "Romashka")
        assert found.best.manager_id == rig.managers["vera"].id
        async with vera.get("/api/calls/pbx1:2.2") as r:
            call = (await r.json())["call"]
            assert (call["party_kind"], call["party_id"], call["party_name"]) == ("lead", lead_id, "Pavel")
        # Saving again fills in the same lead instead of making a second one for the number.
        async with vera.post("/api/calls/pbx1:2.2/lead", json={"name": "Pavel Ivanov"}) as r:
            assert r.status == 200
            assert (await r.json())["id"] == lead_id
        again = await PartyRepository(db).lookup("+79031234567")
        assert [(m.id, m.name, m.company) for m in again.matches] == [(lead_id, "Pavel Ivanov", "Romashka")]


async def test_lead_form_fills_in_the_lead_made_automatically_and_refuses_clients(db: Database) -> None:
    """The lead the call service made for an unknown caller is named from the card; a client's call gets 409."""
    async with running_app(db) as rig, rig.browser("vera") as vera:
        auto = await PartyRepository(db).add_lead(NewLead(name="+79031234567", phones=("79031234567",)))
        client = await PartyRepository(db).add_client(NewClient(name="Ivan Petrov", phones=("79161110001",)))
        await add_call(db, linkedid="2.2", rang=("103",), answered_by="103", caller="79031234567")
        await add_call(db, linkedid="2.3", rang=("103",), answered_by="103", caller="79161110001")
        async with db.session() as session:
            await session.execute(
                update(CallRow).where(CallRow.linkedid == "2.2").values(party_kind="lead", party_id=auto.id)
            )
            await session.execute(
                update(CallRow)
                .where(CallRow.linkedid == "2.3")
                .values(party_kind="client", party_id=client.id)
            )
        async with vera.post(
            "/api/calls/pbx1:2.2/lead", json={"name": "Pavel", "email": "p@example.com"}
        ) as r:
            assert r.status == 200
            assert (await r.json())["id"] == auto.id
        found = await PartyRepository(db).lookup("+79031234567")
        assert [(m.id, m.name, m.manager_id) for m in found.matches] == [
            (auto.id, "Pavel", rig.managers["vera"].id)
        ]
        async with vera.post("/api/calls/pbx1:2.3/lead", json={"name": "Not a lead"}) as r:
            assert r.status == 409


async def test_lead_needs_a_real_phone_number(db: Database) -> None:
    """An anonymous caller cannot become a lead from the call (there is no number to keep)."""
    async with running_app(db) as rig, rig.browser("boris") as boris:
        await add_call(db, linkedid="3.3", rang=("102",), answered_by="102", caller="anonymous")
        async with boris.post("/api/calls/pbx1:3.3/lead", json={"name": "Who"}) as r:
            assert r.status == 400


async def test_deal_is_opened_for_the_calls_client_and_shown_with_the_call(db: Database) -> None:
    """A deal created from a client's call belongs to that client, the manager and the call; unknown callers get 409."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        client = await PartyRepository(db).add_client(NewClient(name="Ivan Petrov", phones=("79161110001",)))
        call = await add_call(db, linkedid="1.1", rang=("101",), answered_by="101", caller="79161110001")
        async with db.session() as session:
            row = await session.get(CallRow, call)
            assert row is not None
            row.party_kind, row.party_id = "client", client.id
        async with anna.post("/api/calls/pbx1:1.1/deals", json={"title": "Pipes", "amount": "1500.5"}) as r:
            assert r.status == 201
        (deal,) = await DealRepository(db).open_for(client_id=client.id, lead_id=None)
        assert (deal.title, deal.amount, deal.call_id) == ("Pipes", Decimal("1500.50"), call)
        assert deal.manager_id == rig.managers["anna"].id
        async with anna.post("/api/calls/pbx1:1.1/deals", json={"title": "Bad", "amount": "NaN"}) as r:
            assert r.status == 400
        await add_call(db, linkedid="1.2", rang=("101",), answered_by="101", caller="79037777777")
        async with anna.post("/api/calls/pbx1:1.2/deals", json={"title": "Who?", "amount": 1}) as r:
            assert r.status == 409


async def test_callback_task_is_set_for_the_caller_and_due_when_asked(db: Database) -> None:
    """A callback set from the card is this manager's task for the caller's number, due in the given minutes."""
    async with running_app(db) as rig, rig.browser("boris") as boris:
        call = await add_call(db, linkedid="4.4", rang=("102",), answered_by=None, caller="89031234567")
        before = datetime.now(UTC)
        async with boris.post(
            "/api/calls/pbx1:4.4/tasks", json={"title": "Send prices", "due_minutes": 45}
        ) as r:
            assert r.status == 201
        (task,) = await NoteRepository(db).tasks_for_call(call)
        assert (task.phone, task.title, task.manager_id) == (
            "+79031234567",
            "Send prices",
            rig.managers["boris"].id,
        )
        due = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=UTC)
        assert timedelta(minutes=44) < due - before < timedelta(minutes=46)
        async with boris.post("/api/calls/pbx1:4.4/tasks", json={"due_minutes": 0}) as r:
            assert r.status == 400
        async with boris.post("/api/calls/pbx1:4.4/tasks", json={"due_at": "2026-12-01T10:00:00"}) as r:
            assert r.status == 400


async def test_recording_is_served_only_to_managers_who_may_see_the_call(
    db: Database, tmp_path: Path
) -> None:
    """The recording plays for the answering manager, from the recordings folder; another manager gets 404."""
    rec_dir = tmp_path / "monitor"
    rec_dir.mkdir()
    (rec_dir / "in-4951234567-2.2.wav").write_bytes(b"RIFF-fake-wave")
    async with running_app(db, recordings_dir=rec_dir) as rig:
        # Stored as the PBX wrote it: an absolute path under its own spool folder.
        await add_call(
            db,
            linkedid="2.2",
            rang=("103",),
            answered_by="103",
            recording="/var/spool/asterisk/monitor/in-4951234567-2.2.wav",
        )
        async with rig.browser("vera") as vera, vera.get("/api/calls/pbx1:2.2/recording") as r:
            assert r.status == 200
            assert await r.read() == b"RIFF-fake-wave"
        async with rig.browser("anna") as anna, anna.get("/api/calls/pbx1:2.2/recording") as r:
            assert r.status == 404


async def test_recording_paths_cannot_leave_the_recordings_folder(tmp_path: Path) -> None:
    """Stored names with '..', absolute paths elsewhere, symlinks out and NUL bytes never reach a file outside."""
    rec_dir = tmp_path / "monitor"
    (rec_dir / "2026").mkdir(parents=True)
    (rec_dir / "2026" / "a.wav").write_bytes(b"a")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, rec_dir / "link.wav")
    assert recording_path(rec_dir, str(rec_dir / "2026" / "a.wav")) == (rec_dir / "2026" / "a.wav").resolve()
    assert recording_path(rec_dir, "2026/a.wav") == (rec_dir / "2026" / "a.wav").resolve()
    assert recording_path(rec_dir, "/elsewhere/monitor/link.wav") is None
    for hostile in ["../secret.txt", "2026/../../secret.txt", str(secret), "link.wav", "a\x00.wav", "", "."]:
        assert recording_path(rec_dir, hostile) is None, hostile
    assert recording_path(tmp_path / "missing", "a.wav") is None


async def test_store_cards_show_client_facts_last_five_calls_and_open_deals(db: Database) -> None:
    """The card has the client, its manager, turnover, stop list, the 5 newest calls and open deals."""
    from crmtel.push.cards import StoreCards
    from crmtel.store.deals import NewDeal
    from crmtel.store.managers import ManagerRepository
    from tests.unit.test_push_live import ring

    anna = await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    client = await PartyRepository(db).add_client(
        NewClient(
            name="OOO Vector",
            phones=("+7 903 123-45-67",),
            category=Category.WHOLESALE,
            manager_id=anna.id,
            turnover=Decimal("250000"),
            turnover_month=datetime(2026, 10, 1).date(),
            stop_list=True,
        )
    )
    base = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for i in range(7):
        await add_call(
            db, linkedid=f"9.{i}", rang=("101",), answered_by="101", started_at=base + timedelta(days=i)
        )
    await DealRepository(db).add(
        NewDeal(title="Steel", amount=Decimal(10), manager_id=anna.id, client_id=client.id)
    )
    card = await StoreCards(db).card_for(ring("101"))
    assert (card.kind, card.name, card.category, card.manager_name) == (
        "client",
        "OOO Vector",
        "wholesale",
        anna.name,
    )
    assert card.turnover == Decimal("250000")
    assert card.stop_list is True
    assert [c.started_at.day for c in card.recent_calls] == [7, 6, 5, 4, 3]
    assert [d.title for d in card.open_deals] == ["Steel"]


async def test_store_cards_for_unknown_hidden_and_internal_callers(db: Database) -> None:
    """An unknown number gets a 'new lead' card, 'anonymous' a hidden card, an extension an internal card."""
    from dataclasses import replace

    from crmtel.push.cards import StoreCards
    from tests.unit.test_push_live import ring

    cards = StoreCards(db)
    assert (await cards.card_for(ring("101"))).kind == "new_lead"
    assert (await cards.card_for(replace(ring("101"), caller_number="anonymous"))).kind == "hidden"
    assert (await cards.card_for(replace(ring("101"), caller_number="<script>"))).kind == "hidden"
    assert (await cards.card_for(replace(ring("101"), caller_number="104"))).kind == "internal"
