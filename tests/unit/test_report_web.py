"""Pure parts of the report page: the default period and the page's escaping."""

from __future__ import annotations

from datetime import UTC, date, datetime

from crmtel.domain import Manager, Role
from crmtel.i18n import Translator
from crmtel.reports.models import CallsVsDeals, ManagerFigures, Period, ReportFilter
from crmtel.reports.web import ReportRequest, default_period, page_html


def test_default_period_is_the_month_so_far_compared_with_the_same_days() -> None:
    """On 15 December the default is 1–15 Dec, compared with 1–15 Nov."""
    p = default_period(date(2026, 12, 15), "UTC")
    assert (p.start, p.end) == (date(2026, 12, 1), date(2026, 12, 16))
    assert (p.previous().start, p.previous().end) == (date(2026, 11, 1), date(2026, 11, 16))


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
