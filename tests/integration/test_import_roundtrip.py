"""Export then import gives back the same data (CSV and XLSX), with formula injection neutralised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select

from crmtel.exchange.exporter import export_file
from crmtel.exchange.importer import ImportKind, import_file
from crmtel.store.db import Database
from crmtel.store.models import ClientContactRow, ClientRow, ContactRow, LeadRow, ManagerRow, PhoneRow
from tests.integration.test_import_clients import CLIENTS
from tests.integration.test_import_managers_leads import LEADS, MANAGERS

HOSTILE = "=cmd|' /C calc'!A0"


async def snapshot(db: Database) -> dict[str, Any]:
    """Everything import/export carries, without database ids."""
    async with db.engine.connect() as conn:
        logins = dict((await conn.execute(select(ManagerRow.id, ManagerRow.login))).all())
        clients = {
            r.id: (
                *(r.external_id, r.name, r.kind, r.category, logins.get(r.manager_id), r.turnover),
                *(r.turnover_month, r.stop_list, r.notes),
            )
            for r in await conn.execute(select(ClientRow))
        }
        contacts = dict((await conn.execute(select(ContactRow.id, ContactRow.name))).all())
        phones: list[tuple[str, int | None, int | None, int | None]] = [
            (r[0], r[1], r[2], r[3])
            for r in await conn.execute(
                select(PhoneRow.e164, PhoneRow.client_id, PhoneRow.contact_id, PhoneRow.lead_id)
            )
        ]
        links: list[tuple[int, int]] = [
            (r[0], r[1])
            for r in await conn.execute(select(ClientContactRow.client_id, ClientContactRow.contact_id))
        ]
        leads = {
            r.id: (r.name, r.company, r.email, r.source, r.status, r.refusal_reason, logins.get(r.manager_id))
            for r in await conn.execute(select(LeadRow))
        }
    return {
        "clients": sorted(clients.values(), key=str),
        "client_phones": sorted(((clients[c], e) for e, c, _k, _l in phones if c is not None), key=str),
        "contacts": sorted(
            ((contacts[k], sorted((clients[c] for c, k2 in links if k2 == k), key=str)) for k in contacts),
            key=str,
        ),
        "contact_phones": sorted(
            ((contacts[person], e) for e, _c, person, _l in phones if person is not None), key=str
        ),
        "leads": sorted(leads.values(), key=str),
        "lead_phones": sorted(((leads[lead], e) for e, _c, _k, lead in phones if lead is not None), key=str),
    }


async def fill(db: Database, tmp_path: Path) -> None:
    for kind, text in (
        (ImportKind.MANAGERS, MANAGERS),
        (ImportKind.CLIENTS, CLIENTS),
        (ImportKind.LEADS, LEADS),
    ):
        path = tmp_path / f"seed-{kind.value}.csv"
        path.write_text(text, encoding="utf-8")
        report = await import_file(db, kind, path)
        assert report.errors == []
    hostile = tmp_path / "hostile.csv"
    hostile.write_text(f'code;name;notes;phones\nH1;"{HOSTILE}";@SUM(1+1);+79160000001\n', encoding="utf-8")
    assert (await import_file(db, ImportKind.CLIENTS, hostile)).errors == []


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
async def test_export_then_import_into_an_empty_store_gives_the_same_data(
    db: Database, database_url: str, tmp_path: Path, suffix: str
) -> None:
    """Managers, clients (with shared contacts) and leads exported and re-imported into an empty store match."""
    await fill(db, tmp_path)
    before = await snapshot(db)
    files = {kind: tmp_path / f"out-{kind.value}{suffix}" for kind in ImportKind}
    for kind, path in files.items():
        await export_file(db, kind, path)
    async with db.engine.begin() as conn:
        for table in (PhoneRow, ClientContactRow, ContactRow, LeadRow, ClientRow, ManagerRow):
            await conn.execute(delete(table))
    for kind in ImportKind:
        report = await import_file(db, kind, files[kind])
        assert (report.errors, report.warnings) == ([], [])
    assert await snapshot(db) == before


async def test_export_then_reimport_into_the_same_store_changes_nothing(db: Database, tmp_path: Path) -> None:
    """Re-importing an XLSX export over the data it came from reports every row unchanged."""
    await fill(db, tmp_path)
    before = await snapshot(db)
    for kind in ImportKind:
        path = tmp_path / f"out-{kind.value}.xlsx"
        await export_file(db, kind, path)
        report = await import_file(db, kind, path)
        assert (report.created, report.updated, report.errors) == (0, 0, [])
    assert await snapshot(db) == before


async def test_exported_formulas_are_neutralised(db: Database, tmp_path: Path) -> None:
    """The hostile name is exported prefixed with an apostrophe in CSV, and as a text cell in XLSX."""
    await fill(db, tmp_path)
    csv_path, xlsx_path = tmp_path / "c.csv", tmp_path / "c.xlsx"
    await export_file(db, ImportKind.CLIENTS, csv_path)
    await export_file(db, ImportKind.CLIENTS, xlsx_path)
    text = csv_path.read_text(encoding="utf-8-sig")
    assert f";'{HOSTILE};" in text
    assert ";'@SUM(1+1);" in text
    ws = load_workbook(xlsx_path).worksheets[0]
    cells = [c for row in ws.iter_rows() for c in row if isinstance(c.value, str) and HOSTILE in c.value]
    assert [(c.value, c.data_type) for c in cells] == [("'" + HOSTILE, "s")]
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)


async def test_export_refuses_unknown_extensions(db: Database, tmp_path: Path) -> None:
    """Exporting to .json is a clear error and writes no file."""
    from crmtel.exchange.csvio import BadFile

    with pytest.raises(BadFile, match="unsupported"):
        await export_file(db, ImportKind.CLIENTS, tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()
