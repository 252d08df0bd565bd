"""CSV and XLSX files read row by row within bounds: memory stays the same whatever the file's size.

A physical CSV line may be at most ``MAX_LINE`` bytes and is checked before it is decoded or split (a 200 MB
line or cell is refused after reading 64 KiB of it); a record's fields are bounded by the csv module's field
limit; NUL bytes and invalid UTF-8 are refused with their line. XLSX rows come from openpyxl's read-only
(streaming) worksheet.
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
ROW = tuple[int, list[str]]


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
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError, Exception) as err:
            raise BadFile(f"not a readable XLSX workbook: {err.__class__.__name__}: {err}") from err
        self._close.append(wb)
        ws = wb.worksheets[0] if wb.worksheets else None
        if ws is None:
            raise BadFile("the workbook has no worksheet")
        rows = enumerate(ws.iter_rows(values_only=True), start=1)
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
