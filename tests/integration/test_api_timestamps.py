"""Every instant the API returns carries its offset: history, call detail, websocket messages, JSON reports.

The bug this pins: ``started_at`` came back as naive UTC (``"2026-12-01T08:03:08.458855"``), which a browser
reads as local time, so a Moscow page showed every call three hours early.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from crmtel.push.messages import Card, RecentCall, card_json
from crmtel.reports import render
from crmtel.reports.models import CallsVsDeals, ManagerFigures, Period, ReportFilter
from crmtel.store.db import Database
from crmtel.store.parties import NewLead, PartyRepository
from crmtel.timestamps import iso_instant, iso_value
from tests.integration.test_web_app import add_call, receive, running_app
from tests.unit.test_push_live import ring

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_WITH_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
MOMENT = datetime(2026, 12, 1, 8, 3, 8, 458855, tzinfo=UTC)


def instants(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, text) in a JSON value whose text looks like a date-time."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from instants(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from instants(item, f"{path}[{i}]")
    elif isinstance(value, str) and _DATETIME.match(value):
        yield path, value


def assert_all_have_offsets(value: Any) -> int:
    """Fail on any date-time without ``Z``/``±HH:MM``; the number checked (so a test sees it checked some)."""
    found = list(instants(value))
    naive = [(p, v) for p, v in found if not _WITH_OFFSET.search(v)]
    assert naive == []
    return len(found)


def test_naive_store_values_are_utc_and_aware_ones_are_converted() -> None:
    """A naive value (SQLite) is UTC; a +03:00 value becomes the same instant in UTC; days stay days."""
    assert iso_instant(MOMENT.replace(tzinfo=None)) == "2026-12-01T08:03:08.458855Z"
    moscow = datetime.fromisoformat("2026-12-01T11:03:08.458855+03:00")
    assert iso_instant(moscow) == "2026-12-01T08:03:08.458855Z"
    assert datetime.fromisoformat(iso_instant(moscow) or "") == MOMENT
    assert iso_value(MOMENT.date()) == "2026-12-01"
    assert iso_instant(None) is None


async def test_history_detail_and_websocket_carry_offsets(db: Database) -> None:
    """/api/calls, /api/calls/{id} (notes, tasks) and call.ringing with its card: no naive instant anywhere."""
    await PartyRepository(db, "RU").add_lead(NewLead(name="Иван", phones=("+79031234567",), source="site"))
    async with running_app(db) as rig, rig.browser("boris") as boris:
        await add_call(db, linkedid="1764576188.1", rang=("102",), answered_by="102", started_at=MOMENT)
        async with boris.get("/api/calls") as r:
            calls = (await r.json())["calls"]
        assert calls[0]["started_at"] == "2026-12-01T08:03:08.458855Z"
        assert assert_all_have_offsets(calls) >= 2
        call_id = calls[0]["call_id"]
        async with boris.post(f"/api/calls/{call_id}/notes", json={"comment": "перезвонить"}) as r:
            assert r.status == 201
            assert assert_all_have_offsets(await r.json()) == 1
        async with boris.post(f"/api/calls/{call_id}/tasks", json={"due_minutes": 30}) as r:
            assert r.status == 201
        async with boris.get(f"/api/calls/{call_id}") as r:
            detail = await r.json()
        assert (
            assert_all_have_offsets(detail) >= 4
        )  # started, ended, the note's created_at, the task's due_at

        ws = await boris.ws_connect("/ws")
        await receive(ws)
        await rig.notifier.publish(ring("102", call_id="pbx1:1764576999.1", at=MOMENT))
        msg = await receive(ws)
        assert msg["type"] == "call.ringing"
        assert msg["at"] == "2026-12-01T08:03:08.458855Z"
        recent = msg["card"]["recent_calls"] if msg["card"] else []
        if not recent:
            # The card may follow the popup as call.card when the store is slower than the card wait.
            follow = await receive(ws)
            recent = follow["card"]["recent_calls"]
        assert recent[0]["started_at"] == "2026-12-01T08:03:08.458855Z"
        assert_all_have_offsets(msg)
        await ws.close()


def test_recent_call_cards_and_report_json_serialise_instants_with_offsets() -> None:
    """The card JSON and the JSON report use the same helper (``generated_at`` ends in Z)."""
    recent = RecentCall(MOMENT.replace(tzinfo=None), "inbound", "answered", "102", 3.0)
    data = card_json(Card(kind="lead", number="+79031234567", recent_calls=(recent,)))
    assert data is not None
    assert data["recent_calls"][0]["started_at"] == "2026-12-01T08:03:08.458855Z"
    period = Period(MOMENT.date(), MOMENT.date().replace(day=2), "Europe/Moscow")
    row = ManagerFigures(manager_id=1, name="Анна", login="anna", inbound=2)
    report = CallsVsDeals(period, ReportFilter(), (row,), period.previous(), (), MOMENT)
    data = render.to_dict(report)
    assert assert_all_have_offsets(data) == 1
    assert data["generated_at"] == "2026-12-01T08:03:08.458855Z"
    assert_all_have_offsets(data)
