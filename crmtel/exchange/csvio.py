"""Tabular files (CSV and XLSX) read into plain rows of text, and written back safely."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crmtel.errors import ImportFailed

# A whole import file is read into memory; anything bigger than this is not a CRM export.
MAX_FILE_BYTES = 256 * 1024 * 1024
# Spreadsheet programs run a cell starting with one of these as a formula ("CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPE = "'"
_DELIMITERS = (";", ",", "\t")


class BadFile(ImportFailed):
    """The file as a whole cannot be read (wrong encoding, binary junk, broken quoting, …)."""


@dataclass(frozen=True, slots=True)
class RawTable:
    """A header and the data rows of a file, each with the line (CSV) or row (XLSX) it started on."""

    header: tuple[str, ...]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def neutralise(text: str) -> str:
    """Prefix a cell a spreadsheet would run as a formula with ``'`` (and double an existing ``'``)."""
    if text.startswith((*_FORMULA_START, _ESCAPE)):
        return _ESCAPE + text
    return text


def unneutralise(text: str) -> str:
    """Undo ``neutralise`` so that exported files import back unchanged."""
    if len(text) > 1 and text[0] == _ESCAPE and text[1:].startswith((*_FORMULA_START, _ESCAPE)):
        return text[1:]
    return text


def header_key(name: str) -> str:
    """A header cell as a lookup key: case-insensitive, spaces and dashes as underscores."""
    return "_".join(name.replace("\ufeff", "").strip().lower().replace("-", " ").split())


def _decode(data: bytes) -> str:
    if b"\x00" in data:
        raise BadFile("the file contains NUL bytes: it is binary, not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise BadFile(
            f"line {line}: the file is not valid UTF-8 (byte {err.start}); save it as 'CSV UTF-8'"
        ) from err


def sniff_delimiter(first_line: str) -> str:
    """The delimiter used by a CSV header line: the most frequent of ``;``, ``,`` and tab."""
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv_bytes(data: bytes) -> RawTable:
    """Parse CSV bytes (UTF-8, optional BOM, ``;``/``,``/tab sniffed from the header)."""
    if data.startswith(b"PK\x03\x04"):
        raise BadFile("this is a ZIP/XLSX file, not CSV: give it the .xlsx extension")
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first_line), strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: tuple[str, ...] | None = None
    line = 1
    try:
        for cells in reader:
            if header is None:
                header = tuple(cells)
            elif any(c.strip() for c in cells):
                rows.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as err:
        raise BadFile(f"line {line}: broken CSV: {err}") from err
    if not header or not any(h.strip() for h in header):
        raise BadFile("the file is empty: no header line")
    return RawTable(header, rows)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        # Phone numbers and codes typed into Excel come back as floats.
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def read_xlsx(path: Path) -> RawTable:
    """The first worksheet of an XLSX workbook (read-only, cached values instead of formulas)."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError, Exception) as err:
        # openpyxl raises many unrelated exception types on corrupt files; all mean "unreadable".
        raise BadFile(f"not a readable XLSX workbook: {err.__class__.__name__}: {err}") from err
    try:
        ws = wb.worksheets[0] if wb.worksheets else None
        if ws is None:
            raise BadFile("the workbook has no worksheet")
        header: tuple[str, ...] | None = None
        rows: list[tuple[int, list[str]]] = []
        for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in values]
            if header is None:
                if any(c.strip() for c in cells):
                    header = tuple(cells)
                continue
            if any(c.strip() for c in cells):
                rows.append((number, cells))
    finally:
        wb.close()
    if header is None:
        raise BadFile("the worksheet is empty: no header row")
    # Trailing empty header cells come from formatted but unused columns.
    while header and not header[-1].strip():
        header = header[:-1]
    return RawTable(header, [(n, _fit(c, len(header))) for n, c in rows])


def _fit(cells: list[str], width: int) -> list[str]:
    # Read-only sheets report rows as wide as the widest row: drop empty tails, pad short rows.
    while len(cells) > width and not cells[-1].strip():
        cells.pop()
    return cells + [""] * (width - len(cells))


def read_table(path: Path) -> RawTable:
    """Read a ``.csv`` or ``.xlsx`` file into a RawTable; unreadable files raise BadFile."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".txt", ".xlsx"}:
        raise BadFile(f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise BadFile(f"cannot read {path}: {err.strerror}") from err
    if size > MAX_FILE_BYTES:
        raise BadFile(f"{path.name} is {size} bytes; the limit is {MAX_FILE_BYTES}")
    if suffix == ".xlsx":
        return read_xlsx(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadFile(f"cannot read {path}: {err.strerror}") from err
    return read_csv_bytes(data)


Cell = str | int | Decimal | None


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    return str(value)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> int:
    """Write a UTF-8 CSV with BOM (Excel opens it right), ``;``-separated; text cells neutralised."""
    count = 0
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row])
            count += 1
    return count


def write_xlsx(path: Path, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> int:
    """Write an XLSX workbook; text cells are neutralised and stored as strings, never formulas."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("data")
    ws.append(list(header))
    count = 0
    for row in rows:
        cells: list[Any] = []
        for value in row:
            if isinstance(value, str):
                # XLSX (XML) cannot hold most control characters; openpyxl would refuse the whole file.
                cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", neutralise(value)))
                cell.data_type = "s"
                cells.append(cell)
            elif isinstance(value, Decimal):
                cells.append(float(value))
            else:
                cells.append(value)
        ws.append(cells)
        count += 1
    wb.save(path)
    return count


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> int:
    """Write rows to ``.csv`` or ``.xlsx`` (by extension); returns the number of data rows."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return write_xlsx(path, header, rows)
    if suffix in {".csv", ".txt"}:
        return write_csv(path, header, rows)
    raise BadFile(f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx")
