"""The call list as a CSV file Excel opens (``GET /api/calls.csv``): the list's filters, every matching call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Literal
from zoneinfo import ZoneInfo

from aiohttp import web

from crmtel.i18n import Translator
from crmtel.phones import PhoneKind, display, normalize
from crmtel.push.api import CallsQuery, call_filter
from crmtel.push.context import STATE, current_manager, translator, watch_scope
from crmtel.push.downloads import csv_stream
from crmtel.push.inputs import read_query
from crmtel.reports.render import excel_table, result_name
from crmtel.store.history import CallView


class CallsCsvQuery(CallsQuery):
    """The list's filters, and ``sep=comma`` for a comma-separated file (``;`` otherwise, as Excel in Russia)."""

    sep: Literal["comma"] | None = None


# Calls read from the store at a time (the memory a download holds, whatever the period's length).
_BATCH = 500
# The seconds columns (ringing, talk) are numbers: a decimal comma in the `;` file; the rest stay as written.
NUMERIC = frozenset({6, 7})
# Text a spreadsheet would run as a formula is written as text (an apostrophe first).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: str | None) -> str:
    """A text cell no spreadsheet runs as a formula."""
    value = value or ""
    return "'" + value if value.startswith(_FORMULA) else value


def number_text(number: str, region: str) -> str:
    """A number written one way (``+7 916 777-00-07``); what is not a phone number stays as sent, as text — a
    caller ID is whatever the caller's network put there (``=HYPERLINK(…)`` is kept raw by the tracker)."""
    text = display(number, region)
    return text if normalize(number, region).kind is PhoneKind.E164 else as_text(text)


def _seconds(value: float) -> str:
    return f"{value:.1f}"


def rows(calls: Sequence[CallView], names: Mapping[str, str], tr: Translator, region: str) -> list[list[str]]:
    """The heading and one line per call, every cell as text: local start time as ``2026-12-06 14:05:03``
    (Excel reads it as a date in every locale), numbers written one way (+7 916 777-00-07, never a number
    Excel would shorten), the manager by name, seconds with one decimal, the outside number a blind transfer
    sent the call on to, the number a forwarded call was answered on (a manager's mobile)."""
    zone = ZoneInfo(tr.zone)
    out = [
        [
            tr.t("page.fact.when"),
            tr.t("page.fact.direction"),
            tr.t("page.calls.csv_number"),
            tr.t("page.calls.csv_party"),
            tr.t("page.fact.answered_by"),
            tr.t("page.fact.outcome"),
            tr.t("page.calls.csv_ring_seconds"),
            tr.t("page.calls.csv_talk_seconds"),
            tr.t("page.fact.queue"),
            tr.t("page.fact.result"),
            # Added last, so a sheet or macro reading the older files' columns by position reads them on unchanged.
            tr.t("page.fact.transferred_to"),
            tr.t("page.fact.answered_on"),
        ]
    ]
    for call in calls:
        number = call.caller_number if call.direction == "inbound" else call.dialled
        who = names.get(call.answered_by or "")
        answered = f"{who} ({call.answered_by})" if who else call.answered_by or ""
        out.append(
            [
                call.started_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                tr.t(f"page.direction.{call.direction}"),
                number_text(number, region) if number else "",
                as_text(call.party_name or call.caller_name),
                as_text(answered),
                tr.t(f"page.outcome.{call.outcome or 'in_progress'}"),
                _seconds(call.ring_seconds),
                _seconds(call.talk_seconds),
                as_text(call.queue),
                as_text(result_name(call.result, tr)) if call.result else "",
                number_text(call.transferred_to, region) if call.transferred_to else "",
                number_text(call.answered_on, region) if call.answered_on else "",
            ]
        )
    return out


def to_csv(lines: Sequence[Sequence[str]], sep: str) -> bytes:
    """UTF-8 with a BOM, ``;`` and decimal commas in the seconds (Russian Excel), or ``,`` with decimal
    points."""
    return excel_table(lines, sep=sep, numeric=NUMERIC)


async def download_calls(request: web.Request) -> web.StreamResponse:
    """``GET /api/calls.csv?manager=&from=&to=&direction=&outcome=&number=&recording=&sep=comma``: every call
    the list shows with these filters, newest first, read by the list's own id cursor and written as read."""
    state = request.app[STATE]
    q = read_query(request, CallsCsvQuery)
    me = current_manager(request)
    people = await state.managers.all()
    only = call_filter(request, q, people)
    names = {ext: m.name for m in people for ext in m.extensions}
    tr = translator(request)

    async def batches() -> AsyncIterator[list[list[str]]]:
        before = q.before
        while True:
            batch = await state.history.list(
                watch_scope(me), limit=_BATCH, before_id=before, only=only, owner_id=me.id
            )
            yield rows(batch, names, tr, state.region)[1:]
            if len(batch) < _BATCH:
                return
            before = batch[-1].id

    heading = rows([], names, tr, state.region)[0]
    return await csv_stream(request, heading, batches(), sep=q.sep, filename="calls.csv", numeric=NUMERIC)


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount the call list's download (behind the session check, like the list)."""
    router.add_get("/api/calls.csv", download_calls)
