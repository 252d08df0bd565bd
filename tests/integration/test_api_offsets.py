"""Times sent to the API with an offset are the instants they say, stored as UTC, on SQLite and PostgreSQL alike.

The bug this pins: ``POST /api/tasks`` with ``"due_at": "…T10:00:00+03:00"`` was stored as 10:00 UTC on SQLite
(the offset dropped on the way into the column), so a Moscow manager's callback came up three hours late, and the
calendar's ``from``/``to`` range (also with offsets) compared against the wrong hours. Run on PostgreSQL too with
``CRMTEL_TEST_DATABASE_URL``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from crmtel.store.db import Database
from crmtel.store.models import DealRow, TaskRow
from crmtel.timestamps import as_utc
from tests.integration.test_api_timestamps import MOMENT
from tests.integration.test_crm_api import _json, crm_app, logged_in
from tests.integration.test_web_app import add_call, running_app

MOSCOW = timezone(timedelta(hours=3))
YEKATERINBURG = timezone(timedelta(hours=5))


def _tomorrow_at_ten(zone: timezone) -> datetime:
    """10:00 tomorrow on a clock in ``zone`` (a time the API accepts: within its range from now)."""
    day = (datetime.now(zone) + timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=zone)


async def _stored_due(db: Database, task_id: int) -> datetime:
    async with db.session() as session:
        value = (await session.execute(select(TaskRow.due_at).where(TaskRow.id == task_id))).scalar_one()
    return as_utc(value)


async def test_a_task_due_at_with_an_offset_is_that_instant_stored_returned_and_found(db: Database) -> None:
    """due_at 10:00+03:00 is 07:00 UTC in the row and in the answer; the calendar's range with offsets finds it
    exactly (a window an hour either side of it in Yekaterinburg time), and not in the hour after."""
    due = _tomorrow_at_ten(MOSCOW)
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        body = {"title": "Перезвонить", "due_at": due.isoformat(), "party_kind": "client"}
        async with anna.post("/api/tasks", json={**body, "party_id": ids["anna_client"]}) as r:
            assert r.status == 201, await r.text()
            task: dict[str, Any] = await _json(r)
        assert datetime.fromisoformat(task["due_at"]) == due
        assert task["due_at"].endswith("Z")
        assert await _stored_due(db, task["id"]) == due.astimezone(UTC)

        def window(start: datetime, end: datetime) -> dict[str, str]:
            zone = YEKATERINBURG
            return {"from": start.astimezone(zone).isoformat(), "to": end.astimezone(zone).isoformat()}

        hour = timedelta(hours=1)
        async with anna.get("/api/tasks", params=window(due - hour, due + hour)) as r:
            assert [t["id"] for t in (await _json(r))["items"]] == [task["id"]]
        async with anna.get("/api/tasks", params=window(due + hour, due + 3 * hour)) as r:
            assert (await _json(r))["items"] == []

        later = due + timedelta(minutes=30)
        async with anna.patch(f"/api/tasks/{task['id']}", json={"due_at": later.isoformat()}) as r:
            assert r.status == 200, await r.text()
            assert datetime.fromisoformat((await _json(r))["due_at"]) == later
        assert await _stored_due(db, task["id"]) == later.astimezone(UTC)


async def test_a_deals_next_step_at_with_an_offset_is_that_instant(db: Database) -> None:
    """next_step_at 10:00+05:00 is 05:00 UTC in the row and in the answer."""
    when = _tomorrow_at_ten(YEKATERINBURG)
    async with crm_app(db) as (base, ids), logged_in(base, "anna") as anna:
        body = {"kind": "client", "party_id": ids["anna_client"], "title": "Поставка"}
        async with anna.post("/api/deals", json={**body, "next_step_at": when.isoformat()}) as r:
            assert r.status == 201, await r.text()
            deal: dict[str, Any] = await _json(r)
        assert datetime.fromisoformat(deal["next_step_at"]) == when
        async with db.session() as session:
            stored = (
                await session.execute(select(DealRow.next_step_at).where(DealRow.id == deal["id"]))
            ).scalar_one()
        assert stored is not None
        assert as_utc(stored) == when.astimezone(UTC)


async def test_a_call_task_due_at_with_an_offset_is_that_instant(db: Database) -> None:
    """The call card's task (POST /api/calls/{id}/tasks) with due_at 10:00+03:00 is 07:00 UTC in the row."""
    due = _tomorrow_at_ten(MOSCOW)
    async with running_app(db) as rig, rig.browser("boris") as boris:
        await add_call(db, linkedid="1764576188.1", rang=("102",), answered_by="102", started_at=MOMENT)
        async with boris.get("/api/calls") as r:
            call_id = (await r.json())["calls"][0]["call_id"]
        async with boris.post(f"/api/calls/{call_id}/tasks", json={"due_at": due.isoformat()}) as r:
            assert r.status == 201, await r.text()
        async with db.session() as session:
            (stored,) = (await session.execute(select(TaskRow.due_at))).scalars().all()
        assert as_utc(stored) == due.astimezone(UTC)
