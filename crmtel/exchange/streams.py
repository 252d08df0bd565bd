"""CSV and XLSX files read row by row within bounds: memory stays the same whatever the file's size.

A physical CSV line may be at most ``MAX_LINE`` bytes and is checked before it is decoded or split (a 200 MB
line or cell is refused after reading 64 KiB of it); a record's fields are bounded by the csv module's field
limit; NUL bytes and invalid UTF-8 are refused with their line. XLSX rows come from openpyxl's row parser
over a tree emptied after each row; every text run of the sheet and of the shared strings is bounded
(``MAX_XML_TEXT``) as its bytes arrive, before the XML parser gathers it.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from crmtel.exchange.csvio import BadFile, _cell_text, _fit, sniff_delimiter

MAX_LINE = 64 * 1024
# The longest text of one XLSX element (a cell's value, a shared string) read before the file is refused.
MAX_XML_TEXT = 64 * 1024
ROW = tuple[int, list[str]]


class _BoundedXml:
    """An XML part of an XLSX read through expat before its parser sees it: a run of text (a cell, a shared
    string) longer than ``MAX_XML_TEXT`` is refused as soon as its bytes arrive, never gathered whole."""

    def __init__(self, raw: IO[bytes], part: str) -> None:
        from xml.parsers import expat

        self._raw = raw
        self._part = part
        self._run = 0
        self._check = expat.ParserCreate()
        self._check.CharacterDataHandler = self._text
        self._check.StartElementHandler = self._reset
        self._check.EndElementHandler = self._reset

    def _reset(self, *_args: object) -> None:
        self._run = 0

    def _text(self, data: str) -> None:
        self._run += len(data)
        if self._run > MAX_XML_TEXT:
            raise BadFile(
                f"{self._part}: a cell or string longer than {MAX_XML_TEXT} characters: not a CRM export"
            )

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size if 0 < size <= MAX_LINE else MAX_LINE)
        try:
            self._check.Parse(data, not data)
        except BadFile:
            raise
        except Exception as err:  # expat's ExpatError: not XML
            raise BadFile(f"{self._part}: not readable XML: {err}") from err
        return data

    def close(self) -> None:
        self._raw.close()


class _Lines:
    """The file's physical lines as text, each bounded and decoded on its own (so errors name their line)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        data = self._raw.readline(MAX_LINE + 1)
        if not data:
            raise StopIteration
        self.number += 1
        if len(data) > MAX_LINE:
            raise BadFile(f"line {self.number}: longer than {MAX_LINE} bytes: not a CRM export")
        if b"\x00" in data:
            raise BadFile("the file contains NUL bytes: it is binary, not a CSV text file")
        try:
            # Lines end at b"\n", which never splits a UTF-8 sequence: each decodes on its own.
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadFile(
                f"line {self.number}: the file is not valid UTF-8 (byte {err.start}); save it as 'CSV UTF-8'"
            ) from err
        if self.number == 1:
            text = text.removeprefix("\ufeff")
        return text


def _read_strings(reader: Any) -> None:
    """openpyxl's ``ExcelReader.read_strings``, its part read within ``MAX_XML_TEXT`` per string."""
    from openpyxl.reader.strings import read_rich_text, read_string_table
    from openpyxl.xml.constants import SHARED_STRINGS

    found = reader.package.find(SHARED_STRINGS)
    if found is None:
        return
    part = found.PartName[1:]
    read = read_rich_text if reader.rich_text else read_string_table
    with reader.archive.open(part) as src:
        reader.shared_strings = read(_BoundedXml(src, part))


def _sheet_rows(source: Any, reader: Any) -> Iterator[tuple[int, list[Any]]]:
    """``(row number, values by column)`` of a worksheet's XML, the tree emptied after each row."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.worksheet._reader import WorkSheetParser
    from openpyxl.xml.constants import SHEET_MAIN_NS

    row_tag, data_tag = f"{{{SHEET_MAIN_NS}}}row", f"{{{SHEET_MAIN_NS}}}sheetData"
    wb = reader.wb
    cells = WorkSheetParser(
        source,
        reader.shared_strings,
        data_only=True,
        epoch=wb.epoch,
        date_formats=wb._date_formats,
        timedelta_formats=wb._timedelta_formats,
    )
    sheet_data = None
    try:
        for event, element in iterparse(source, events=("start", "end")):
            if event == "start":
                if element.tag == data_tag:
                    sheet_data = element
                continue
            if element.tag != row_tag:
                continue
            number, parsed = cells.parse_row(element)
            element.clear()
            if sheet_data is not None:
                sheet_data.clear()
            width = max((c["column"] for c in parsed), default=0)
            values: list[Any] = [None] * width
            for cell in parsed:
                values[cell["column"] - 1] = cell["value"]
            yield number, values
    except Exception as err:  # a corrupt sheet (bad XML, bad cell) is an unreadable file, not a crash
        if isinstance(err, BadFile):
            raise
        raise BadFile(f"not a readable XLSX worksheet: {err.__class__.__name__}: {err}") from err


class TableStream:
    """A table file opened for reading row by row: ``header``, then iterate ``(line, cells)``; close it."""

    header: tuple[str, ...]

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in {".csv", ".txt", ".xlsx"}:
            raise BadFile(f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx")
        if not path.is_file():
            raise BadFile(f"cannot read {path}: not a regular file")
        self._close: list[Any] = []
        self._rows: Iterator[ROW]
        try:
            if suffix == ".xlsx":
                self._open_xlsx(path)
            else:
                self._open_csv(path)
        except BaseException:
            self.close()
            raise

    def _open_csv(self, path: Path) -> None:
        try:
            raw = path.open("rb")
        except OSError as err:
            raise BadFile(f"cannot read {path}: {err.strerror}") from err
        self._close.append(raw)
        if raw.read(4) == b"PK\x03\x04":
            raise BadFile("this is a ZIP/XLSX file, not CSV: give it the .xlsx extension")
        raw.seek(0)
        lines = _Lines(raw)
        first = next(lines, "")
        header_cells = next(csv.reader([first], delimiter=sniff_delimiter(first)), [])
        if not header_cells or not any(h.strip() for h in header_cells):
            raise BadFile("the file is empty: no header line")
        self.header = tuple(header_cells)
        self._rows = self._csv_rows(lines, sniff_delimiter(first))

    @staticmethod
    def _csv_rows(lines: _Lines, delimiter: str) -> Iterator[ROW]:
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        line = 2
        try:
            for cells in reader:
                if any(c.strip() for c in cells):
                    yield line, cells
                line = lines.number + 1
        except csv.Error as err:
            raise BadFile(f"line {line}: broken CSV: {err}") from err

    def _open_xlsx(self, path: Path) -> None:
        # openpyxl's read-only workbook would scan a whole sheet that lacks a <dimension> element (openpyxl's
        # own writer, crmtel's exports) before the first row, keeping every row element of it (420 MB for
        # 3,000,000 rows), and its row reader keeps each cleared row in the sheet's tree. So the workbook's
        # parts are read with openpyxl's reader (strings, styles: what dates are), and the sheet's rows with
        # its row parser over a tree that is emptied after every row.
        from openpyxl.reader.excel import ExcelReader
        from openpyxl.styles.stylesheet import apply_stylesheet

        try:
            reader = ExcelReader(str(path), read_only=True, data_only=True)
            self._close.append(reader.archive)
            reader.read_manifest()
            _read_strings(reader)
            reader.read_workbook()
            apply_stylesheet(reader.archive, reader.wb)
            targets = [
                rel.target
                for _sheet, rel in reader.parser.find_sheets()
                if rel.target in reader.valid_files and "chartsheet" not in rel.Type
            ]
            if not targets:
                raise BadFile("the workbook has no worksheet")
            source = reader.archive.open(targets[0])
        except BadFile:
            raise
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError, Exception) as err:
            # openpyxl raises many unrelated exception types on corrupt files; all mean "unreadable".
            raise BadFile(f"not a readable XLSX workbook: {err.__class__.__name__}: {err}") from err
        self._close.append(source)
        rows = _sheet_rows(_BoundedXml(source, targets[0]), reader)
        header: tuple[str, ...] | None = None
        for _number, values in rows:
            cells = [_cell_text(v) for v in values]
            if any(c.strip() for c in cells):
                header = tuple(cells)
                break
        if header is None:
            raise BadFile("the worksheet is empty: no header row")
        while header and not header[-1].strip():
            header = header[:-1]
        self.header = header
        width = len(header)

        def data() -> Iterator[ROW]:
            for number, values in rows:
                cells = [_cell_text(v) for v in values]
                if any(c.strip() for c in cells):
                    yield number, _fit(cells, width)

        self._rows = data()

    def __iter__(self) -> Iterator[ROW]:
        return self._rows

    def batches(self, size: int) -> Iterator[list[ROW]]:
        """The rows in lists of at most ``size``."""
        batch: list[ROW] = []
        for row in self._rows:
            batch.append(row)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        """Close the file (or workbook)."""
        while self._close:
            self._close.pop().close()

    def __enter__(self) -> TableStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
