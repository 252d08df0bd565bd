"""The queue report's query string (pure)."""

from __future__ import annotations

from datetime import date

from aiohttp.test_utils import make_mocked_request

from crmtel.reports.queue_web import parse_period


def test_a_nul_in_the_queue_never_reaches_the_store() -> None:
    """PostgreSQL refuses a NUL in a parameter (``?queue=%00`` was a 503 «the record store is unavailable»
    logged as an outage): it is dropped, the rest of the name kept; nothing left is no queue filter."""
    request = make_mocked_request("GET", "/reports/queues?queue=sa%00les&preset=today")
    assert parse_period(request, "Europe/Moscow", date(2026, 12, 6))[1] == "sales"
    request = make_mocked_request("GET", "/reports/queues?queue=%00")
    assert parse_period(request, "Europe/Moscow", date(2026, 12, 6))[1] is None
