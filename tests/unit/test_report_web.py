"""Pure parts of the report page: the default period and the page's escaping."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from crmtel.domain import Manager, Role
from crmtel.i18n import Translator
from crmtel.reports.models import CallsVsDeals, ManagerFigures, Period, ReportFilter
from crmtel.reports.web import ReportRequest, default_period, page_html, query_period


def test_default_period_is_the_month_so_far_compared_with_the_same_days() -> None:
    """On 15 December the default is 1–15 Dec, compared with 1–15 Nov."""
    p = default_period(date(2026, 12, 15), "UTC")
    assert (p.start, p.end) == (date(2026, 12, 1), date(2026, 12, 16))
    assert (p.previous().start, p.previous().end) == (date(2026, 11, 1), date(2026, 11, 16))


SIXTH_OF_DECEMBER = date(2026, 12, 6)


def _asked(query: str) -> tuple[tuple[date, date], tuple[date, date], str]:
    period, preset = query_period(make_mocked_request("GET", f"/r?{query}"), "UTC", SIXTH_OF_DECEMBER)
    before = period.previous()
    return (period.start, period.end), (before.start, before.end), preset


@pytest.mark.parametrize(
    ("query", "asked"),
    [
        # No period: this month so far against the same days of November, named as the preset.
        ("", ((date(2026, 12, 1), date(2026, 12, 7)), (date(2026, 11, 1), date(2026, 11, 7)), "this_month")),
        # The form sends the preset back with its own dates (a filter applied): still like with like.
        (
            "preset=this_month&from=2026-12-01&to=2026-12-07&manager=anna",
            ((date(2026, 12, 1), date(2026, 12, 7)), (date(2026, 11, 1), date(2026, 11, 7)), "this_month"),
        ),
        (
            "preset=this_week&from=2026-11-30&to=2026-12-07",
            ((date(2026, 11, 30), date(2026, 12, 7)), (date(2026, 11, 23), date(2026, 11, 30)), "this_week"),
        ),
        # Dates changed in the form: they are the period, compared with as many days just before.
        (
            "preset=this_month&from=2026-12-02&to=2026-12-07",
            ((date(2026, 12, 2), date(2026, 12, 7)), (date(2026, 11, 27), date(2026, 12, 2)), ""),
        ),
        (
            "from=2026-12-01&to=2026-12-07",
            ((date(2026, 12, 1), date(2026, 12, 7)), (date(2026, 11, 25), date(2026, 12, 1)), ""),
        ),
        # A preset link alone.
        (
            "preset=last_month",
            ((date(2026, 11, 1), date(2026, 12, 1)), (date(2026, 10, 1), date(2026, 11, 1)), "last_month"),
        ),
    ],
)
def test_a_preset_keeps_its_comparison_when_the_form_sends_its_dates_back(
    query: str, asked: tuple[tuple[date, date], tuple[date, date], str]
) -> None:
    """A preset (or no period) compares like with like; the form's dates equal to it keep it; other dates are
    a period of one's own."""
    assert _asked(query) == asked


def test_a_bad_preset_or_reversed_dates_are_a_400() -> None:
    """Unknown presets and reversed dates are refused, not a 500."""
    for query in ("preset=fortnight", "preset=this_month&from=2026-12-07&to=2026-12-01"):
        with pytest.raises(web.HTTPBadRequest):
            _asked(query)


def test_the_page_offers_every_preset_and_downloads_keep_the_preset() -> None:
    """The preset links carry the filters, the current one is marked; downloads ask for the same preset (so
    their «previous» row is the page's); the form sends the preset back hidden."""
    period = default_period(SIXTH_OF_DECEMBER, "UTC")
    head = Manager(1, "Hugo", "hugo", Role.HEAD, True, None, ())
    report = CallsVsDeals(
        period, ReportFilter(), (), period.previous(), (), datetime(2026, 12, 6, tzinfo=UTC)
    )
    request = ReportRequest(period, ReportFilter(), "", "anna", "this_month")
    html = page_html(report, request, head, [], "/reports", tr=Translator.for_locale("ru", zone="UTC"))
    assert 'href="/reports/calls-vs-deals?preset=last_week&amp;manager=anna"' in html
    assert 'primary" aria-current="true" data-preset="this_month"' in html
    assert 'href="/reports/calls-vs-deals.csv?from=2026-12-01&amp;to=2026-12-07&amp;preset=this_month' in html
    assert '<input type="hidden" name="preset" value="this_month">' in html


def test_page_escapes_the_logged_in_managers_name_and_hides_filters() -> None:
    """A manager's own page shows their name as text and offers no team or manager filter."""
    period = Period(date(2026, 11, 1), date(2026, 11, 2), "UTC")
    user = Manager(7, "<img src=x onerror=alert(1)>", "eve", Role.MANAGER, True, None, ())
    report = CallsVsDeals(
        period,
        ReportFilter(manager_id=7),
        (ManagerFigures(7, user.name, "eve", inbound=1),),
        period.previous(),
        (),
        datetime(2026, 11, 2, tzinfo=UTC),
    )
    request = ReportRequest(period, ReportFilter(manager_id=7), "", "")
    html = page_html(report, request, user, [], "/reports", tr=Translator.for_locale("en", zone="UTC"))
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'name="team"' not in html
    assert 'name="manager"' not in html
