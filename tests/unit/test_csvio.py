"""Reading and writing tabular files: encodings, delimiters, broken input, formula neutralisation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from crmtel.exchange.csvio import (
    BadFile,
    header_key,
    neutralise,
    read_csv_bytes,
    read_table,
    sniff_delimiter,
    unneutralise,
    write_table,
)

HOSTILE = "=cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    ("data", "expected_header"),
    [
        (b"name;phones\nA;+79161110001\n", ("name", "phones")),
        (b"name,phones\nA,+79161110001\n", ("name", "phones")),
        (b"\xef\xbb\xbfname;phones\r\nA;+79161110001\r\n", ("name", "phones")),
        (b"\xef\xbb\xbfname,phones\r\nA,+79161110001\r\n", ("name", "phones")),
        (b"name\tphones\nA\t+79161110001\n", ("name", "phones")),
    ],
)
def test_bom_and_delimiter_variants_read_the_same(data: bytes, expected_header: tuple[str, ...]) -> None:
    """UTF-8 with or without BOM, ';' ',' or tab: the same header and cells come out."""
    table = read_csv_bytes(data)
    assert table.header == expected_header
    assert table.rows == [(2, ["A", "+79161110001"])]


def test_quoted_cell_with_separators_and_newline_keeps_start_line() -> None:
    """A quoted multi-line cell stays one cell, and the next row reports its own starting line."""
    data = b'name;phones;notes\nA;"+79161110001; +79161110002";"two\nlines"\nB;+79161110003;\n'
    table = read_csv_bytes(data)
    assert table.rows[0] == (2, ["A", "+79161110001; +79161110002", "two\nlines"])
    assert table.rows[1][0] == 4


def test_blank_lines_are_skipped_but_line_numbers_stay_true() -> None:
    """Empty lines are not rows, and later rows keep their physical line number."""
    table = read_csv_bytes(b"name;n\n\nA;1\n;\nB;2\n")
    assert [(line, cells[0]) for line, cells in table.rows] == [(3, "A"), (5, "B")]


def test_sniffer_prefers_the_most_frequent_delimiter() -> None:
    """A ';' header with a comma inside a column name is still ';'-separated."""
    assert sniff_delimiter("name;phones, all;notes") == ";"
    assert sniff_delimiter("name") == ","


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name\nA\xff\xfeB\n", "not valid UTF-8"),
        (b"name\nA\x00B\n", "NUL bytes"),
        (b"PK\x03\x04rest-of-a-zip", "XLSX"),
        (b"", "empty"),
        (b"name\n" + b"a" * 10 + b',"' + b"x" * 1_000_000 + b'"\n', "field larger than field limit"),
        (b'name;notes\nA;"unterminated\n', "line 2"),
    ],
)
def test_broken_csv_gives_a_clear_error(data: bytes, message: str) -> None:
    """Bad encoding, binary junk, a zip, an empty file, a 1 MB cell, broken quoting: BadFile, not a crash."""
    with pytest.raises(BadFile, match=message):
        read_csv_bytes(data)


def test_cp1251_error_names_the_line() -> None:
    """A file saved in Windows-1251 is refused with the line of the first undecodable byte."""
    data = "name\nA\nКлиент\n".encode("cp1251")
    with pytest.raises(BadFile, match="line 3"):
        read_csv_bytes(data)


def test_header_keys_ignore_case_spaces_and_bom() -> None:
    """'\\ufeffExternal ID ' and 'external-id' are the same column."""
    assert header_key("\ufeffExternal ID ") == "external_id"
    assert header_key("external-id") == "external_id"
    assert header_key("PHONES") == "phones"


@pytest.mark.parametrize("text", [HOSTILE, "+7 916", "-1", "@SUM(A1)", "\tx", "'=x", "'", "plain", ""])
def test_neutralise_round_trips(text: str) -> None:
    """Whatever the text, unneutralise(neutralise(x)) == x."""
    assert unneutralise(neutralise(text)) == text


def test_formula_cells_are_prefixed() -> None:
    """A cell a spreadsheet would run as a formula starts with an apostrophe after neutralising."""
    assert neutralise(HOSTILE) == "'" + HOSTILE
    assert neutralise("OOO Vector") == "OOO Vector"


def test_csv_export_neutralises_formulas(tmp_path: Path) -> None:
    """The hostile string is written with a leading apostrophe; numbers are written as they are."""
    path = tmp_path / "out.csv"
    write_table(path, ["name", "turnover"], [[HOSTILE, Decimal("-5.00")]])
    text = path.read_text(encoding="utf-8-sig")
    assert "'=cmd" in text
    assert "\n=cmd" not in text
    table = read_table(path)
    assert table.rows == [(2, ["'" + HOSTILE, "-5.00"])]


def test_xlsx_export_writes_text_never_formulas(tmp_path: Path) -> None:
    """In XLSX the hostile string is a plain string cell (prefixed), not a formula."""
    path = tmp_path / "out.xlsx"
    write_table(path, ["name", "turnover"], [[HOSTILE, Decimal("1234.5")], ["=1+1", None]])
    ws = load_workbook(path).worksheets[0]
    cells = [ws.cell(row=r, column=1) for r in (2, 3)]
    assert all(c.data_type == "s" for c in cells)
    assert [c.value for c in cells] == ["'" + HOSTILE, "'=1+1"]
    assert ws.cell(row=2, column=2).value == 1234.5


def test_xlsx_reading_converts_numbers_and_pads_rows(tmp_path: Path) -> None:
    """Phones typed as numbers lose no digits and no '.0'; short rows are padded to the header."""
    wb = Workbook()
    ws = wb.active
    ws.append(["name", "phones", "turnover"])
    ws.append(["A", 79161110001, 1500.5])
    ws.append(["B"])
    path = tmp_path / "in.xlsx"
    wb.save(path)
    table = read_table(path)
    assert table.header == ("name", "phones", "turnover")
    assert table.rows == [(2, ["A", "79161110001", "1500.5"]), (3, ["B", "", ""])]


def test_junk_with_xlsx_extension_is_a_clear_error(tmp_path: Path) -> None:
    """Random bytes named .xlsx: BadFile naming the problem."""
    path = tmp_path / "junk.xlsx"
    path.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(BadFile, match="not a readable XLSX"):
        read_table(path)


def test_unsupported_extension_and_missing_file(tmp_path: Path) -> None:
    """Only .csv/.txt/.xlsx are read; a missing file is a BadFile, not an OSError."""
    with pytest.raises(BadFile, match="unsupported"):
        read_table(tmp_path / "clients.json")
    with pytest.raises(BadFile, match="cannot read"):
        read_table(tmp_path / "missing.csv")


def test_xlsx_export_survives_control_characters(tmp_path: Path) -> None:
    """A name with control characters (legal in CSV, illegal in XLSX XML) is exported with U+FFFD instead."""
    path = tmp_path / "out.xlsx"
    write_table(path, ["name"], [["bell\x07 and\x1b escape"]])
    assert read_table(path).rows == [(2, ["bell\ufffd and\ufffd escape"])]
