"""Query strings as the handlers read them (pure)."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from crmtel.push.inputs import Query, read_query


class _Find(Query):
    manager: str | None = None
    q: str = ""


def test_a_nul_in_a_query_value_never_reaches_the_store() -> None:
    """PostgreSQL refuses a NUL in any text parameter (the whole request became «database unavailable»):
    NULs are dropped from query values as from bodies' texts, the rest of the value kept."""
    found = read_query(make_mocked_request("GET", "/api/clients.csv?manager=an%00na&q=%00"), _Find)
    assert (found.manager, found.q) == ("anna", "")
