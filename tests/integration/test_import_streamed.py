"""Clients, leads and managers imported from files of any size: read, checked and written in batches, so memory follows the batch
and not the file; a row in a later batch still meets the rows before it (the same client again adds a
contact, other data is an error naming the first line); an endless line is refused after 64 KiB."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from crmtel.errors import ImportFailed
from crmtel.exchange import importer
from crmtel.exchange.importer import ImportKind, import_file
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository
from tests.integration.test_import_clients import CLIENTS, counts, managers, write
from tests.integration.test_import_managers_leads import LEADS, MANAGERS

__all__ = ["managers"]

HEADER = "external_id;name;phones;contact_name;contact_phones\n"


class Rows:
    """A Progress that notes the row counts it is shown."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def step(self, name: str, rows: int | None = None) -> None:
        """Ignore steps."""

    def rows(self, done: int) -> None:
        self.seen.append(done)


async def test_batches_give_the_same_result_as_one_read(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """The shared test file in batches of one row: the same clients, contacts, links and numbers."""
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, CLIENTS), batch_rows=1)
    assert report.errors == []
    assert report.applied
    assert report.rows == 5
    assert await counts(db) == (4, 2, 3, 7)


async def test_a_client_repeated_in_a_later_batch(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """Same data 2,000 rows later adds its contact person to the one client; other data under the same
    external id is an error naming the first line, and then nothing is written."""
    filler = "".join(f"F-{i};Filler {i};+7 916 {i:07d};;\n" for i in range(2000))
    same = HEADER + "C-1;Vector;+7 495 111-22-33;Ivan;+7 916 999-00-01\n" + filler
    same += "C-1;Vector;+7 495 111-22-33;Maria;+7 916 999-00-02\n"
    progress = Rows()
    report = await import_file(
        db, ImportKind.CLIENTS, write(tmp_path, same), batch_rows=500, progress=progress
    )
    assert report.errors == []
    assert progress.seen == [500, 1000, 1500, 2000, 2002]
    clients, contacts, links, _phones = await counts(db)
    assert (clients, contacts, links) == (2001, 2, 2)

    other = HEADER + "C-9;Vector;+7 495 111-22-39;;\n" + filler.replace("F-", "G-") + "C-9;Vektor;;;\n"
    before = await counts(db)
    bad = await import_file(db, ImportKind.CLIENTS, write(tmp_path, other, "other.csv"), batch_rows=500)
    assert [(e.line, e.reason) for e in bad.errors] == [
        (2003, "duplicate client external_id 'C-9' (line 2) with different data")
    ]
    assert not bad.applied
    assert await counts(db) == before


async def test_an_endless_line_is_refused_after_64_kib_without_reading_it_into_memory(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """One 20 MB line (a cell that never ends): a one-line error naming the line; Python allocated well
    under a megabyte for it."""
    path = tmp_path / "endless.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        out.write("C-1;" + "x" * 20_000_000 + "\n")
    tracemalloc.start()
    try:
        with pytest.raises(ImportFailed, match="line 2: longer than 65536 bytes"):
            await import_file(db, ImportKind.CLIENTS, path)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert await counts(db) == (0, 0, 0, 0)


async def test_leads_in_batches_keep_their_rules_across_batches(db: Database, tmp_path: Path) -> None:
    """Leads a row at a time: the same leads as one read; two rows in different batches matching one stored
    lead are still the error naming the first; errors in an early batch keep later batches from writing."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    first = await import_file(db, ImportKind.LEADS, write(tmp_path, LEADS, "leads.csv"), batch_rows=1)
    assert (first.created, first.errors, first.rows) == (3, [], 3)
    split = "name;phones\nS1;+79261002030\nS2;+74957008090\n"
    report = await import_file(db, ImportKind.LEADS, write(tmp_path, split, "split.csv"), batch_rows=1)
    assert [(e.line, "same stored lead" in e.reason) for e in report.errors] == [(3, True)]
    early = "name;phones;manager\nX;+79170000001;nobody\nY;+79170000002;\n"
    bad = await import_file(db, ImportKind.LEADS, write(tmp_path, early, "early.csv"), batch_rows=1)
    assert [str(e) for e in bad.errors] == ["line 2: unknown manager login 'nobody'"]
    assert (bad.created, bad.applied) == (0, False)
    assert (await PartyRepository(db).lookup_raw("+79170000002")).best is None


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"C-2;\xcf\xf0\xe8\xe2\xe5\xf2;;;\n", "line 3: the file is not valid UTF-8"),  # cp1251, not UTF-8
        ("C-2;Привет;;;".encode()[:-5] + b"\xd0", "line 3: the file is not valid UTF-8"),  # cut mid-letter
        (b"C-2;a\x00b;;;\n", "NUL bytes"),
    ],
)
async def test_a_broken_line_deep_in_a_streamed_file_names_its_line_and_writes_nothing(
    db: Database, managers: dict[str, int], tmp_path: Path, tail: bytes, message: str
) -> None:
    """Text that is not UTF-8 (or binary) after good rows: one error naming the line; nothing is kept."""
    path = tmp_path / "broken.csv"
    path.write_bytes((HEADER + "C-1;Vector;+7 495 111-22-33;;\n").encode() + tail)
    with pytest.raises(ImportFailed, match=message):
        await import_file(db, ImportKind.CLIENTS, path, batch_rows=1)
    assert await counts(db) == (0, 0, 0, 0)


def test_an_xlsx_without_dimension_is_read_row_by_row(tmp_path: Path) -> None:
    """A sheet written by openpyxl's streaming writer (no <dimension>, as crmtel's own exports) read by the
    row parser: rows come with their numbers (an empty row skipped), dates as dates, numbers as text.
    (Its memory over 3,000,000 rows is bench/import_memory.py's to show.)"""
    from datetime import datetime

    from openpyxl import Workbook

    from crmtel.exchange.streams import TableStream

    path = tmp_path / "clients.xlsx"
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("clients")
    ws.append(["external_id", "name", "turnover_month", "phones"])
    ws.append([])
    for i in range(3_000):
        ws.append([f"C-{i}", f"Клиент {i}", datetime(2026, 10, 1), 79161110000 + i])
    wb.save(path)
    with TableStream(path) as stream:
        first = next(iter(stream))
        count = 1 + sum(len(batch) for batch in stream.batches(500))
    assert stream.header == ("external_id", "name", "turnover_month", "phones")
    assert first == (3, ["C-0", "Клиент 0", "2026-10-01", "79161110000"])
    assert count == 3_000


_MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _xlsx_with_a_huge_text(path: Path, *, shared: bool, megabytes: int = 20) -> None:
    """A real workbook whose row 2 has one cell of ``megabytes`` MB: inline, or in sharedStrings.xml."""
    import zipfile

    from openpyxl import Workbook

    plain = path.with_suffix(".plain.xlsx")
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["name", "phones"])
    ws.append(["x", "+79161110001"])
    wb.save(plain)
    head = b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="' + _MAIN + b'"><sheetData>'
    huge = b"A" * (1 << 20)
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "[Content_Types].xml" and shared and b"sharedStrings" not in data:
                data = data.replace(
                    b"</Types>",
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
                    b'officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
                )
            if item.filename == "xl/_rels/workbook.xml.rels" and shared and b"sharedStrings" not in data:
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdSS" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    b'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
                )
            if item.filename in ("xl/worksheets/sheet1.xml", "xl/sharedStrings.xml"):
                continue
            zout.writestr(item, data)
        with zout.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(head)
            if shared:
                sheet.write(
                    b'<row r="1"><c r="A1" t="s"><v>1</v></c><c r="B1" t="s"><v>2</v></c></row>'
                    b'<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" t="s"><v>3</v></c></row>'
                )
            else:
                sheet.write(
                    b'<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c>'
                    b'<c r="B1" t="inlineStr"><is><t>phones</t></is></c></row>'
                    b'<row r="2"><c r="A2" t="inlineStr"><is><t>'
                )
                for _ in range(megabytes):
                    sheet.write(huge)
                sheet.write(b"</t></is></c></row>")
            sheet.write(b"</sheetData></worksheet>")
        if shared:
            with zout.open("xl/sharedStrings.xml", "w", force_zip64=True) as strings:
                strings.write(b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="' + _MAIN + b'"><si><t>')
                for _ in range(megabytes):
                    strings.write(huge)
                strings.write(
                    b"</t></si><si><t>name</t></si><si><t>phones</t></si><si><t>+7916</t></si></sst>"
                )


def _read_all(opener: Any, path: Path) -> int:
    with opener(path) as stream:
        return sum(1 for _row in stream)


@pytest.mark.parametrize("shared", [False, True], ids=["inline-cell", "shared-string"])
def test_one_huge_xlsx_cell_is_refused_before_it_is_gathered(tmp_path: Path, shared: bool) -> None:
    """A 20 MB cell (inline in the sheet, or one string of sharedStrings.xml) is refused with a one-line
    error while Python has allocated a few megabytes — the XML parser never gathers the text whole."""
    from crmtel.exchange.csvio import BadFile
    from crmtel.exchange.streams import TableStream

    path = tmp_path / "huge.xlsx"
    _xlsx_with_a_huge_text(path, shared=shared)
    tracemalloc.start()
    try:
        with pytest.raises(BadFile, match="longer than 65536 characters"):
            _read_all(TableStream, path)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000


async def test_managers_are_read_row_by_row_and_checked_across_batches(db: Database, tmp_path: Path) -> None:
    """`crmtel import managers` a row at a time: the same managers and extensions as one read; a login repeated
    in a later batch is the error naming its first line; an extension given up by a manager in a later row
    may be taken by an earlier row (the file is checked as a whole, whatever the batch)."""
    progress = Rows()
    report = await import_file(
        db, ImportKind.MANAGERS, write(tmp_path, MANAGERS, "managers.csv"), batch_rows=1, progress=progress
    )
    assert (report.created, report.errors, report.rows, report.applied) == (3, [], 3, True)
    assert progress.seen == [1, 2, 3]
    repo = ManagerRepository(db)
    boris = await repo.by_login("boris")
    assert boris is not None
    assert set(boris.extensions) == {"102", "112"}
    moved = "login;name;extensions\nanna;Anna Smirnova;101, 112\nboris;Boris Ivanov;102\n"
    report = await import_file(db, ImportKind.MANAGERS, write(tmp_path, moved, "moved.csv"), batch_rows=1)
    assert (report.errors, report.updated) == ([], 2)
    anna = await repo.by_login("anna")
    assert anna is not None
    assert set(anna.extensions) == {"101", "112"}
    twice = "login;name;extensions\nivan;Ivan;120\nolga;Olga Petrova;100\nIVAN;Ivan again;121\n"
    bad = await import_file(db, ImportKind.MANAGERS, write(tmp_path, twice, "twice.csv"), batch_rows=1)
    assert [str(e) for e in bad.errors] == ["line 4: duplicate login 'IVAN' (also on line 2)"]
    assert not bad.applied
    assert await repo.by_login("ivan") is None


async def test_a_managers_file_with_an_endless_line_or_too_many_rows_is_refused_within_bounds(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A managers file is streamed like clients and leads: a 20 MB line is refused after 64 KiB (Python allocated
    well under a megabyte for it; the whole-file read held all 20 MB), and a file of more rows than a team
    has is refused naming the bound, nothing written."""
    path = tmp_path / "endless.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("login;name;extensions\nanna;" + "x" * 20_000_000 + ";101\n")
    tracemalloc.start()
    try:
        with pytest.raises(ImportFailed, match="line 2: longer than 65536 bytes"):
            await import_file(db, ImportKind.MANAGERS, path)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    monkeypatch.setattr(importer, "MAX_MANAGER_ROWS", 50)
    many = "login;name\n" + "".join(f"m{i};Manager {i}\n" for i in range(60))
    with pytest.raises(ImportFailed, match="more than 50 manager rows"):
        await import_file(db, ImportKind.MANAGERS, write(tmp_path, many, "many.csv"), batch_rows=20)
    assert await ManagerRepository(db).by_login("m0") is None
