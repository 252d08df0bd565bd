"""Import rows checked into typed records: every bad row is reported with its line and reason."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from crmtel.domain import Category, LeadStatus, Role
from crmtel.exchange.csvio import BadFile, RawTable, read_csv_bytes
from crmtel.exchange.importrows import (
    RowError,
    parse_clients,
    parse_leads,
    parse_managers,
    parse_month,
    parse_phones,
    parse_turnover,
)

LOGINS = {"anna": 1, "boris": 2}


def table(text: str) -> RawTable:
    return read_csv_bytes(text.encode())


def reasons(issues: object) -> list[tuple[int, str]]:
    return [(i.line, i.reason) for i in issues]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("150000", Decimal("150000.00")),
        ("1 234 567,89", Decimal("1234567.89")),
        ("1,234,567.89", Decimal("1234567.89")),
        ("1\u00a0000,5", Decimal("1000.50")),
        (None, None),
    ],
)
def test_turnover_accepts_common_spellings(text: str | None, expected: Decimal | None) -> None:
    """Spaces, non-breaking spaces, decimal comma and thousands commas all parse."""
    assert parse_turnover(text) == expected


@pytest.mark.parametrize("text", ["abc", "-5", "NaN", "Infinity", "1e30", "12..5"])
def test_bad_turnover_is_rejected(text: str) -> None:
    """Text, negatives, NaN, infinity and absurd amounts are row errors."""
    with pytest.raises(RowError, match="bad turnover"):
        parse_turnover(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-10", date(2026, 10, 1)), ("2026-10-15", date(2026, 10, 1)), ("10.2026", date(2026, 10, 1))],
)
def test_turnover_month_is_the_first_of_the_month(text: str, expected: date) -> None:
    """YYYY-MM (and a full date or MM.YYYY) becomes the first day of that month."""
    assert parse_month(text) == expected


@pytest.mark.parametrize("text", ["2026-13", "October", "2026/10", "0000-01"])
def test_bad_month_is_rejected(text: str) -> None:
    """Impossible or unparseable months are row errors."""
    with pytest.raises(RowError, match="turnover_month"):
        parse_month(text)


def test_phones_cell_splits_on_every_separator_and_dedupes() -> None:
    """',', ';', '|' and new lines separate numbers; the same number twice is kept once."""
    phones = parse_phones("8 (916) 111-00-01, +7 916 111-00-02; 79161110003 | 9161110001\n+79161110004", "RU")
    assert [e for e, _ in phones] == ["+79161110001", "+79161110002", "+79161110003", "+79161110004"]
    assert phones[0][1] == "8 (916) 111-00-01"


@pytest.mark.parametrize("text", ["101", "anonymous", "hello", "x" * 200, "+7 916"])
def test_unparseable_phone_is_a_row_error(text: str) -> None:
    """Extensions, anonymous, words, garbage and too-short numbers are not client phones."""
    with pytest.raises(RowError, match="unparseable phone"):
        parse_phones(text, "RU")


def test_client_rows_report_every_problem_with_its_line() -> None:
    """Each bad row yields one error naming its line and reason; good rows become records."""
    parsed = parse_clients(
        table(
            "External_ID;NAME;Category;Manager;Turnover;Turnover_Month;Phones\n"
            "C1;Good;retail;anna;100;2026-10;+79161110001\n"
            "C2;;retail;anna;;;+79161110002\n"
            "C3;Unknown mgr;retail;zoe;;;+79161110003\n"
            "C4;Bad turnover;retail;;lots;;+79161110004\n"
            "C5;Bad phone;retail;;;;12\n"
            "C6;Bad category;vip;;;;+79161110006\n"
            "C1;Same key other data;retail;;;;+79161110007\n"
            "C8;Ragged;retail\n"
        ),
        LOGINS,
        "RU",
    )
    assert reasons(parsed.errors) == [
        (3, "missing name"),
        (4, "unknown manager login 'zoe'"),
        (5, "bad turnover 'lots'"),
        (6, "phones: unparseable phone '12'"),
        (7, "bad category 'vip' (one of: retail, wholesale)"),
        (8, "duplicate client external_id 'C1' (line 2) with different data"),
        (9, "row has 3 cells, the header has 7"),
    ]
    [good] = parsed.records
    assert (good.line, good.external_id, good.manager_id, good.category) == (2, "C1", 1, Category.RETAIL)
    assert good.turnover == Decimal("100.00")
    assert good.turnover_month == date(2026, 10, 1)


def test_repeated_client_rows_add_contacts() -> None:
    """Rows with the same key and client data but another contact person give one client, two contacts."""
    parsed = parse_clients(
        table(
            "code,name,phone,contact,contact_phone\n"
            "C1,Vector,+79161110001,Ivan,+79162223344\n"
            "C1,Vector,+79161110001,Maria,+79165556677\n"
        ),
        LOGINS,
        "RU",
    )
    assert parsed.errors == []
    [client] = parsed.records
    assert [(c.line, c.name) for c in client.contacts] == [(2, "Ivan"), (3, "Maria")]


def test_client_without_external_id_is_keyed_by_name_and_first_phone() -> None:
    """Two rows without external_id, same name (any case/spacing) and same first phone: a duplicate key."""
    parsed = parse_clients(
        table(
            "name;phones;notes\nCafe  Lastochka;+79991234567;a\ncafe lastochka;8 999 123-45-67;b\nCafe Lastochka;+79990000000;c\n"
        ),
        LOGINS,
        "RU",
    )
    assert reasons(parsed.errors) == [
        (3, "duplicate client name and first phone (line 2) with different data")
    ]
    assert len(parsed.records) == 2


def test_contact_columns_must_come_together() -> None:
    """A contact name without numbers (or numbers without a name) is a row error."""
    parsed = parse_clients(
        table("name;contact_name;contact_phones\nA;Ivan;\nB;;+79161110001\n"), LOGINS, "RU"
    )
    assert reasons(parsed.errors) == [
        (2, "contact_name without contact_phones"),
        (3, "contact_phones without contact_name"),
    ]


def test_missing_required_column_refuses_the_file() -> None:
    """A clients file without a name column is refused as a whole."""
    with pytest.raises(BadFile, match="missing required column"):
        parse_clients(table("code;phones\nC1;+79161110001\n"), LOGINS, "RU")


def test_unknown_columns_are_warned_about_and_duplicated_ones_refused() -> None:
    """An unknown column is ignored with a warning; the same column twice is a file error."""
    parsed = parse_clients(table("name;colour\nA;red\n"), LOGINS, "RU")
    assert reasons(parsed.warnings) == [(1, "unknown column 'colour' ignored")]
    with pytest.raises(BadFile, match="appears twice"):
        parse_clients(table("name;phone;phones\nA;1;2\n"), LOGINS, "RU")


def test_long_cells_are_row_errors() -> None:
    """A 100 KB name is reported on its line, not sent to the database."""
    parsed = parse_clients(table("name;phones\n" + "x" * 100_000 + ";+79161110001\n"), LOGINS, "RU")
    assert reasons(parsed.errors) == [(2, "name is longer than 300 characters")]


def test_formula_escape_is_undone_on_import() -> None:
    """A cell exported as \"'=cmd\" imports back as '=cmd' (the apostrophe was ours)."""
    parsed = parse_clients(table("name;phones\n'=cmd|' /C calc'!A0;'+79161110001\n"), LOGINS, "RU")
    assert parsed.errors == []
    assert parsed.records[0].name == "=cmd|' /C calc'!A0"


def test_manager_rows() -> None:
    """Roles, specialities, flags and extensions parse; duplicate logins/extensions in the file are errors."""
    parsed = parse_managers(
        table(
            "Login;Name;Extensions;Role;Speciality;Active;Password\n"
            "anna;Anna;101, 111;manager;retail;yes;secret\n"
            "olga;Olga;100;HEAD;;no;\n"
            "ANNA;Anna again;102;;;;\n"
            "ivan;Ivan;111;;;;\n"
            "petr;Petr;1 0 1;;;;\n"
            "oleg;Oleg;103;boss;;;\n"
            "max;Max;104;;;maybe;\n"
        )
    )
    assert reasons(parsed.errors) == [
        (4, "duplicate login 'ANNA' (also on line 2)"),
        (5, "extension already given on line 2"),
        (6, "bad extension '1 0 1'"),
        (7, "bad role 'boss' (one of: manager, head)"),
        (8, "bad active 'maybe' (use yes or no)"),
    ]
    anna, olga = parsed.records
    assert anna.extensions == ("101", "111")
    assert anna.password == "secret"
    assert anna.speciality is Category.RETAIL
    assert (olga.role, olga.active, olga.password) == (Role.HEAD, False, None)


def test_lead_rows() -> None:
    """Leads need a name and a phone; status and refusal reason are checked; a phone twice is a duplicate."""
    parsed = parse_leads(
        table(
            "name,company,phones,email,source,status,refusal_reason,manager\n"
            'Sergey,Stroy,"+79261002030; +74957008090",s@stroy.example,site,new,,\n'
            "Elena,,+79251111111,,,in work,,anna\n"
            "Pavel,,+79179998877,,,refused,,\n"
            "Nobody,,,,,,,\n"
            "Mail,,+79170000001,not-an-email,,,,\n"
            "Again,,8 495 700-80-90,,,,,\n"
            "Odd,,+79170000002,,,maybe,,\n"
        ),
        LOGINS,
        "RU",
    )
    assert reasons(parsed.errors) == [
        (4, "status refused needs a refusal_reason"),
        (5, "missing phones"),
        (6, "bad email 'not-an-email'"),
        (7, "duplicate lead phone +74957008090 (line 2)"),
        (8, "bad status 'maybe' (one of: new, in_work, converted, refused)"),
    ]
    sergey, elena = parsed.records
    assert sergey.source == "site"
    assert elena.status is LeadStatus.IN_WORK
    assert elena.manager_id == 1
    assert elena.source == "import"
