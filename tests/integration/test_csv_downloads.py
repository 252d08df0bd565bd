"""The list downloads hold every row, however long the list: streamed in the list's own keyset pages (the
20,000-row cut is gone), the viewer's scope kept, and a store failure half-way is a failed download, never a
shorter file that looks complete."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest
from sqlalchemy import insert

from crmtel.crm.search import name_key
from crmtel.store.crm_lists import PartyLists
from crmtel.store.db import Database
from crmtel.store.models import ClientRow, ManagerRow
from tests.integration.test_crm_api import crm_app, logged_in

BULK = 25_000


async def _bulk_clients(db: Database) -> tuple[set[str], set[str]]:
    """25,000 clients in one insert, every other one Anna's, the rest Boris's; their names by owner. Names
    look like decimals (``12.50``): a text cell the `;` file must keep as written."""
    async with db.session() as session:
        managers = {row.login: row.id for row in (await session.execute(ManagerRow.__table__.select())).all()}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    anna: set[str] = set()
    boris: set[str] = set()
    values = []
    for i in range(BULK):
        name = f"{i}.50"
        (anna if i % 2 else boris).add(name)
        values.append(
            {
                "name": name,
                "name_key": name_key(name),
                "kind": "company",
                "manager_id": managers["anna"] if i % 2 else managers["boris"],
                "created_at": start + timedelta(seconds=i // 3),
                "stop_list": False,
                "tags": [],
                "turnover": Decimal("7.25"),
            }
        )
    async with db.session() as session:
        for at in range(0, BULK, 5_000):
            await session.execute(insert(ClientRow), values[at : at + 5_000])
    return anna, boris


async def _download(http: aiohttp.ClientSession, path: str, **params: str) -> tuple[bytes, list[list[str]]]:
    async with http.get(path, params=params) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/csv")
        assert "Content-Length" not in r.headers
        raw = await r.read()
    delimiter = "," if params.get("sep") == "comma" else ";"
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=delimiter))


@pytest.mark.parametrize("sort", ["name", "-created"])
async def test_every_client_is_in_the_file_once_past_twenty_thousand(db: Database, sort: str) -> None:
    """A head's download of 25,003 clients has all 25,003, each once, in the list's order; Anna's has hers and
    the unassigned one, none of Boris's; a BOM, `;`, the Russian heading, a name ``12.50`` kept as ``12.50``
    beside its turnover ``7,25`` (``7.25`` with `,`)."""
    async with crm_app(db) as (base, _ids):
        anna_names, boris_names = await _bulk_clients(db)
        async with logged_in(base, "head") as head:
            raw, rows = await _download(head, "/api/clients.csv", sort=sort)
            assert raw.startswith(b"\xef\xbb\xbf")
            assert rows[0][:2] == ["Название или ФИО", "Компания"]
            names = [r[0] for r in rows[1:]]
            assert len(names) == BULK + 3
            assert set(names) == anna_names | boris_names | {"ИП Петров", "ООО «Вектор»", "Общий"}
            assert "12.50" in names
            assert "12,50" not in names
            assert {r[8] for r in rows[1:] if r[0] == "12.50"} == {"7,25"}
            async with head.get("/api/clients", params={"sort": sort, "limit": "100"}) as r:
                first = [i["name"] for i in (await r.json())["items"]]
            assert names[:100] == first
        async with logged_in(base, "anna") as anna:
            _raw, rows = await _download(anna, "/api/clients.csv", sort=sort, sep="comma")
            assert rows[0][:2] == ["Название или ФИО", "Компания"]
            mine = [r[0] for r in rows[1:]]
            assert len(mine) == len(anna_names) + 2
            assert set(mine) == anna_names | {"ИП Петров", "Общий"}
            assert {r[8] for r in rows[1:] if r[0] == "13.50"} == {"7.25"}


async def test_a_store_failure_half_way_is_a_failed_download(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store failing on the third page (after 1,000 rows went out): the body ends without its chunked
    terminator, so the client — a browser too — sees a broken download, not a 1,000-row file."""
    async with crm_app(db) as (base, _ids):
        await _bulk_clients(db)
        real = PartyLists.page
        calls = 0

        async def failing(self: PartyLists, *args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("connection to the store lost")
            return await real(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(PartyLists, "page", failing)
        async with logged_in(base, "head") as head:
            # Where it surfaces (reading the headers or the body) depends on how fast the drop follows them.
            with pytest.raises(aiohttp.ClientPayloadError):
                async with head.get("/api/clients.csv") as r:
                    await r.read()
        assert calls == 3


async def test_a_head_request_gets_the_headers_and_no_body(db: Database) -> None:
    """HEAD of each streamed list: a GET's status and headers, no body — else the CSV's bytes would be read as the
    next answer on the same keep-alive connection (the hostile-input walk got "Bad status line: \\ufeffWhen;…")."""
    async with crm_app(db) as (base, _ids), logged_in(base, "head") as head:
        for path in (
            "/api/clients.csv",
            "/api/leads.csv",
            "/api/deals.csv",
            "/api/tasks.csv",
            "/api/calls.csv",
        ):
            async with head.head(path) as r:
                assert r.status == 200, path
                assert r.headers["Content-Type"].startswith("text/csv"), path
            # The same connection answers the next request with a proper status line and the whole file.
            raw, rows = await _download(head, path)
            assert raw.startswith(b"\xef\xbb\xbf"), path
            assert rows, path
            assert rows[0], path
