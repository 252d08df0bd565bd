"""The clients a streamed file has already named, kept on disk (a private SQLite file) so that a file of
millions of rows costs the same memory as a small one: a later row with the same key and the same data adds a
contact person, with other data it is an error naming the first line — as when the whole file was read."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path

from crmtel.exchange.importrows import ClientRecord, RowIssue


def _digest(value: object) -> bytes:
    return hashlib.blake2b(repr(value).encode(), digest_size=16).digest()


def _print(rec: ClientRecord) -> bytes:
    fields = ("external_id", "name", "kind", "category", "manager_id", "turnover")
    more = ("turnover_month", "stop_list", "notes", "phones")
    return _digest(tuple(getattr(rec, f) for f in (*fields, *more)))


class SeenClients:
    """Keys (16-byte digests) of the clients of earlier batches, with their first line and data digest."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="crmtel-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.db")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # 2 MB of page cache whatever the file: lookups by random digest miss it anyway (the OS caches the file),
        # and a 16 MB cache was the import's slow RSS growth — filled over the first ~320,000 rows.
        self._db.execute("PRAGMA cache_size=-2000")
        self._db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY, line INTEGER, data BLOB) WITHOUT ROWID")

    def check(self, records: Sequence[ClientRecord]) -> tuple[list[ClientRecord], list[RowIssue]]:
        """The records to write (new keys, or the same data again) and the errors of the others."""
        keys = [_digest(rec.key) for rec in records]
        found: dict[bytes, tuple[int, bytes]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, line, data in self._db.execute(
                f"SELECT key, line, data FROM seen WHERE key IN ({marks})",
                chunk,
            ):
                found[key] = (line, data)
        keep: list[ClientRecord] = []
        errors: list[RowIssue] = []
        new: list[tuple[bytes, int, bytes]] = []
        for rec, key in zip(records, keys, strict=True):
            data = _print(rec)
            first = found.get(key)
            if first is None:
                new.append((key, rec.line, data))
                keep.append(rec)
            elif first[1] == data:
                keep.append(rec)
            else:
                what = f"external_id {rec.external_id!r}" if rec.external_id else "name and first phone"
                errors.append(
                    RowIssue(rec.line, f"duplicate client {what} (line {first[0]}) with different data")
                )
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", new)
        return keep, errors

    def close(self) -> None:
        """Delete the file."""
        self._db.close()
        self._dir.cleanup()


class SeenLeads:
    """Stored leads already matched by a row of earlier batches (lead id -> that row's line), on disk."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="crmtel-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "leads.db")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE claimed (lead INTEGER PRIMARY KEY, line INTEGER)")

    def get_many(self, leads: Sequence[int]) -> dict[int, int]:
        """The line that claimed each of ``leads`` before (those never claimed are absent)."""
        found: dict[int, int] = {}
        for start in range(0, len(leads), 500):
            chunk = list(leads[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(
                    f"SELECT lead, line FROM claimed WHERE lead IN ({marks})",
                    chunk,
                ).fetchall()
            )
        return found

    def put_many(self, claims: dict[int, int]) -> None:
        """Remember these claims."""
        self._db.executemany("INSERT OR IGNORE INTO claimed VALUES (?, ?)", list(claims.items()))

    def close(self) -> None:
        """Delete the file."""
        self._db.close()
        self._dir.cleanup()
