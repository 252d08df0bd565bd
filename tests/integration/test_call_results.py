"""The call's result in one click: configured codes only, stored with the call, in history, API and the report."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestServer

from crmtel.config import CallsSettings, WebSettings
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.reports.models import Period, ReportFilter
from crmtel.reports.queries import ReportQueries
from crmtel.reports.web import report_routes
from crmtel.results.models import ResultChoices
from crmtel.results.web import result_routes
from crmtel.store.call_results import CallResults
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.csrf import page_like_session
from tests.integration.test_web_app import PASSWORD, add_call, seed_managers


async def test_a_result_is_stored_with_the_call_shown_in_history_and_counted_per_manager(
    db: Database,
) -> None:
    """Anna marks her answered call «callback»: the API and the call list show it, the report counts it for her;
    a code not in [calls] results is a 400 naming it, another manager's call a 404, null clears the result."""
    managers = await seed_managers(db)
    today = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    await add_call(db, linkedid="7.1", rang=("101",), answered_by="101", started_at=today)
    await add_call(db, linkedid="7.2", rang=("102",), answered_by="102", started_at=today)
    choices = ResultChoices(("talked", "callback", "Замер назначен"))
    reports = report_routes(
        ReportQueries(db), current_manager, ManagerRepository(db), timezone="UTC", translate=translator
    )
    app = create_app(
        WebSettings(port=0), db=db, hub=Hub(), routes=(result_routes(choices, CallResults(db)), reports)
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with page_like_session(base_url=str(server.make_url("/"))) as anna:
            async with anna.post("/api/login", json={"login": "anna", "password": PASSWORD}) as r:
                assert r.status == 200
            async with anna.get("/api/call-results") as r:
                assert (await r.json())["results"] == ["talked", "callback", "Замер назначен"]
            async with anna.put("/api/calls/pbx1:7.1/result", json={"result": "callback"}) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["result"] == "callback"
            async with anna.put("/api/calls/pbx1:7.1/result", json={"result": "sold a yacht"}) as r:
                assert r.status == 400
                body = await r.json()
                assert body["code"] == "messages.result_unknown"
                assert "sold a yacht" in body["error"]
            async with anna.put("/api/calls/pbx1:7.2/result", json={"result": "talked"}) as r:
                assert r.status == 404, "Boris's call is not Anna's to mark"
            async with anna.get("/api/calls/pbx1:7.1") as r:
                assert (await r.json())["call"]["result"] == "callback"
            async with anna.get("/api/calls") as r:
                listed = {c["call_id"]: c["result"] for c in (await r.json())["calls"]}
                assert listed == {"pbx1:7.1": "callback"}
            async with anna.get("/reports/calls-vs-deals.json?preset=today") as r:
                rows = {row["manager_id"]: row for row in (await r.json())["rows"]}
                assert rows[managers["anna"].id]["results"] == {"callback": 1}
            async with anna.get("/reports/calls-vs-deals.csv?preset=today&sep=comma") as r:
                lines = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
                header, first = lines[0], lines[1]
                assert [h for h in header if ": " in h] == ["Результаты звонков: Перезвонить"], header
                column = header.index("Результаты звонков: Перезвонить")
                assert first[column] == "1", lines
            async with anna.get("/reports/calls-vs-deals?preset=today") as r:
                page = await r.text()
                assert "Call results" in page or "Результаты звонков" in page
            async with anna.put("/api/calls/pbx1:7.1/result", json={"result": None}) as r:
                assert r.status == 200
            async with anna.get("/api/calls/pbx1:7.1") as r:
                assert (await r.json())["call"]["result"] is None
    finally:
        await server.close()
    day = datetime.now(UTC).date()
    figures = await ReportQueries(db).figures(Period(day, day + timedelta(days=1), "UTC"), ReportFilter())
    assert all(row.results == () for row in figures)


def test_the_default_results_are_the_built_in_codes() -> None:
    """Out of the box the card offers amoCRM-like results, each named in the catalogues."""
    assert CallsSettings().results == (
        "talked",
        "agreed",
        "callback",
        "not_interested",
        "no_answer",
        "wrong_number",
    )
