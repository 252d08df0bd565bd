"""How a crmtel call reads in Bitrix24's telephony: type, result code, duration, number, who finishes."""

from __future__ import annotations

import pytest

from crmtel.bitrix24 import models


@pytest.mark.parametrize(
    ("ended", "code"),
    [
        ({"outcome": "answered"}, "200"),
        ({"outcome": "missed", "missed_reason": "BUSY"}, "486"),
        ({"outcome": "missed", "missed_reason": "NO_ANSWER"}, "304"),
        ({"outcome": "missed", "missed_reason": "ABANDONED_IN_QUEUE"}, "304"),
        ({"outcome": "missed", "missed_reason": "CALLER_HUNG_UP_RINGING"}, "304"),
    ],
)
def test_the_outcome_gives_finish_its_status_code(ended: dict[str, str], code: str) -> None:
    """Answered 200, busy 486, any other miss 304."""
    assert models.status_code(ended) == code


def test_type_number_line_and_who_finishes() -> None:
    """Inbound: caller's digits, the dialled line, type 2; outbound: the dialled number, type 1; internal: none."""
    inbound = {"direction": "inbound", "caller_number": "+7 916 111-00-01", "dialled": "4951234567"}
    assert models.call_type("inbound") == models.INCOMING
    assert models.call_type("outbound") == models.OUTGOING
    assert models.call_type("internal") is None
    assert models.client_number(inbound) == "79161110001"
    assert models.line_number(inbound) == "4951234567"
    outbound = {"direction": "outbound", "caller_number": "101", "dialled": "89161110001"}
    assert models.client_number(outbound) == "89161110001"
    assert models.line_number(outbound) is None
    assert models.client_number({"direction": "inbound", "caller_number": "anonymous"}) is None
    assert models.who_finishes({"answered_by": "102", "rang": ["101", "102"]}) == "102"
    assert models.who_finishes({"answered_by": None, "rang": ["103", "102"]}) == "103"
    assert models.duration({"talk_seconds": 41.6}) == 42
    assert models.duration({"talk_seconds": None}) == 0
