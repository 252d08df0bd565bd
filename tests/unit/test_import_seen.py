"""The clients a streamed import has already named live in a private SQLite file whose memory stays small:
its page cache is bounded, so a long import's RSS does not creep while the file grows."""

from __future__ import annotations

import ctypes

from crmtel.exchange.importrows import ClientRecord
from crmtel.exchange.seen import SeenClients


def _record(i: int) -> ClientRecord:
    return ClientRecord(
        line=i + 2,
        key=("id", f"C{i:08d}"),
        external_id=f"C{i:08d}",
        name=f"Client {i}",
        kind="company",
        category=None,
        manager_id=None,
        turnover=None,
        turnover_month=None,
        stop_list=False,
        notes=None,
        phones=(),
    )


def test_the_seen_clients_file_costs_a_bounded_page_cache_whatever_its_size() -> None:
    """200,000 distinct clients in batches of 5,000: SQLite's own allocator grows by less than 4 MB (the file
    itself holds ~10 MB); with the 16 MB cache it had, this grew ~10 MB and went on to 16 MB — the slow RSS
    creep of long imports. The same client again is still recognised."""
    sqlite = ctypes.CDLL("libsqlite3.so.0")
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    seen = SeenClients()
    try:
        before = sqlite.sqlite3_memory_used()
        for start in range(0, 200_000, 5000):
            keep, errors = seen.check([_record(i) for i in range(start, start + 5000)])
            assert (len(keep), errors) == (5000, [])
        grown = sqlite.sqlite3_memory_used() - before
        again = _record(7)
        assert seen.check([again]) == ([again], [])
        other = ClientRecord(**{**{f: getattr(again, f) for f in ClientRecord.__slots__}, "name": "Other"})
        keep, errors = seen.check([other])
        assert keep == []
        assert [e.reason for e in errors] == [
            "duplicate client external_id 'C00000007' (line 9) with different data"
        ]
    finally:
        seen.close()
    assert grown < 4_000_000, grown
