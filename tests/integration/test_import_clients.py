"""Importing clients into the store: all-or-nothing on errors, idempotent re-import, shared contacts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crmtel.domain import PartyKind
from crmtel.exchange.importer import ImportKind, import_file
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import Base, ClientContactRow, ClientRow, ContactRow, PhoneRow
from crmtel.store.parties import NewLead, PartyRepository

CLIENTS = (
    "external_id;name;kind;category;manager;turnover;turnover_month;stop_list;notes;phones;contact_name;contact_phones\n"
    "C-001;OOO Vector;company;wholesale;boris;250000.00;2026-10;no;Pays on time;"
    "+7 495 111-22-33, 8 (916) 111-00-01;Ivan Petrov;+7 916 222-33-44\n"
    "C-001;OOO Vector;company;wholesale;boris;250000.00;2026-10;no;Pays on time;"
    "+7 495 111-22-33, 8 (916) 111-00-01;Maria Sokolova;+7 916 555-66-77\n"
    "C-002;IP Kuznetsov;person;retail;anna;12 500,50;2026-10;no;;8 903 000-11-22;;\n"
    "C-003;OOO Romashka;company;retail;;;;yes;;+7 812 300-40-50;ivan  petrov;+7 916 222-33-44\n"
    ";Cafe Lastochka;company;retail;anna;;;no;;+7 999 123-45-67;;\n"
)


def write(tmp_path: Path, text: str, name: str = "clients.csv", *, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


async def count(db: Database, table: type[Base]) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def counts(db: Database) -> tuple[int, int, int, int]:
    return (
        await count(db, ClientRow),
        await count(db, ContactRow),
        await count(db, ClientContactRow),
        await count(db, PhoneRow),
    )


@pytest.fixture
async def managers(db: Database) -> dict[str, int]:
    repo = ManagerRepository(db)
    anna = await repo.save(login="anna", name="Anna", extensions=("101",))
    boris = await repo.save(login="boris", name="Boris", extensions=("102",))
    return {"anna": anna.id, "boris": boris.id}


async def test_import_creates_clients_contacts_and_phones_that_lookup_finds(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """A good file creates 4 clients, 2 contacts (Ivan shared by two clients), and lookup finds them."""
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, CLIENTS))
    assert report.errors == []
    assert report.applied
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    # clients, contacts, links (Ivan x2 + Maria), phones (2+1+1+1 own, 2 contact numbers)
    assert await counts(db) == (4, 2, 3, 7)
    parties = PartyRepository(db)
    shared = await parties.lookup_raw("+79162223344")
    assert {m.name for m in shared.matches} == {"OOO Vector", "OOO Romashka"}
    assert shared.best is not None
    assert shared.best.manager_id == managers["boris"]
    assert shared.best.via_contact == "Ivan Petrov"
    kuz = await parties.lookup_raw("89030001122")
    assert kuz.best is not None
    assert kuz.best.turnover == Decimal("12500.50")


async def test_reimport_creates_no_duplicates(db: Database, managers: dict[str, int], tmp_path: Path) -> None:
    """Importing the same file twice leaves the same rows; the second run reports everything unchanged."""
    path = write(tmp_path, CLIENTS)
    await import_file(db, ImportKind.CLIENTS, path)
    before = await counts(db)
    again = await import_file(db, ImportKind.CLIENTS, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)
    assert again.warnings == []
    assert await counts(db) == before


async def test_reimport_updates_changed_fields_and_adds_numbers(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """A changed turnover and an extra number update the client found by external_id, not a new one."""
    await import_file(db, ImportKind.CLIENTS, write(tmp_path, CLIENTS))
    changed = "external_id;name;turnover;phones\nC-002;IP Kuznetsov;99000;8 903 000-11-22, +7 903 000-11-23\n"
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, changed, "changed.csv"))
    assert (report.created, report.updated) == (0, 1)
    found = await PartyRepository(db).lookup_raw("+79030001123")
    assert found.best is not None
    assert found.best.name == "IP Kuznetsov"
    assert found.best.turnover == Decimal("99000")
    assert await count(db, ClientRow) == 4


async def test_file_with_errors_imports_nothing(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """One bad row among good ones: every error is reported with its line, and no row is written."""
    text = CLIENTS + "C-009;Bad;company;vip;nobody;lots;;;;+7 916;;\n"
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, text))
    assert [str(e) for e in report.errors] == ["line 7: phones: unparseable phone '+7 916'"]
    assert not report.applied
    assert await counts(db) == (0, 0, 0, 0)


async def test_skip_bad_rows_imports_the_good_ones(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """With skip_bad_rows the good rows land and the bad ones are still reported."""
    text = CLIENTS + "C-009;Unknown manager;;;nobody;;;;;+79160000009;;\n"
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, text), skip_bad_rows=True)
    assert [(e.line, e.reason) for e in report.errors] == [(7, "unknown manager login 'nobody'")]
    assert report.applied
    assert await count(db, ClientRow) == 4


async def test_dry_run_writes_nothing_but_counts(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """A dry run reports what it would create, and the store stays empty."""
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, CLIENTS), dry_run=True)
    assert report.created == 4
    assert not report.applied
    assert await counts(db) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("encoding", "delimiter", "newline"),
    [("utf-8", ";", "\n"), ("utf-8-sig", ";", "\r\n"), ("utf-8", ",", "\r\n"), ("utf-8-sig", ",", "\n")],
)
async def test_bom_and_delimiter_variants_import_alike(
    db: Database, managers: dict[str, int], tmp_path: Path, encoding: str, delimiter: str, newline: str
) -> None:
    """The same clients in any BOM/delimiter/newline variant import the same data (Cyrillic included)."""
    text = (
        f"Code{delimiter}Name{delimiter}Phone{delimiter}Manager\n"
        f'K1{delimiter}ООО Ромашка{delimiter}"+7 812 300-40-50{";" if delimiter == "," else ","} 89161110001"'
        f"{delimiter}anna\n"
    ).replace("\n", newline)
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, text, encoding=encoding))
    assert report.errors == []
    found = await PartyRepository(db).lookup_raw("+79161110001")
    assert [(m.kind, m.name, m.manager_id) for m in found.matches] == [
        (PartyKind.CLIENT, "ООО Ромашка", managers["anna"])
    ]


async def test_numbers_owned_elsewhere_are_warnings_not_errors(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """A number already on a lead, or on two rows of the file, is imported and reported as a duplicate."""
    lead = await PartyRepository(db).add_lead(NewLead(name="Lead", phones=("+79991234567",)))
    text = "code;name;phones\nA;Alpha;+79991234567\nB;Beta;+79991234567\n"
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, text))
    assert report.errors == []
    assert [str(w) for w in report.warnings] == [
        f"line 2: duplicate number +79991234567: also lead #{lead.id}",
        f"line 3: duplicate number +79991234567: also lead #{lead.id}, the client on line 2",
    ]
    found = await PartyRepository(db).lookup_raw("+79991234567")
    assert [m.kind for m in found.matches] == [PartyKind.CLIENT, PartyKind.CLIENT, PartyKind.LEAD]
    assert found.tie


async def test_contact_shared_across_two_imports_is_one_contact(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """A person imported for client A, then (second file) for client B, is linked to both, not duplicated."""
    first = "code;name;contact_name;contact_phones\nA;Alpha;Ivan Petrov;+79162223344\n"
    second = "code;name;contact_name;contact_phones\nB;Beta;IVAN PETROV;+7 916 222-33-44, +79162223345\n"
    await import_file(db, ImportKind.CLIENTS, write(tmp_path, first, "a.csv"))
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, second, "b.csv"))
    assert report.warnings == []
    assert await count(db, ContactRow) == 1
    assert await count(db, ClientContactRow) == 2
    found = await PartyRepository(db).lookup_raw("+79162223345")
    assert {m.name for m in found.matches} == {"Alpha", "Beta"}
    assert found.tie


async def test_client_without_external_id_is_updated_by_name_and_first_phone(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """Without external_id, the same name (any case) and first phone find the stored client."""
    await import_file(db, ImportKind.CLIENTS, write(tmp_path, "name;phones;notes\nCafe;+79991234567;old\n"))
    report = await import_file(
        db, ImportKind.CLIENTS, write(tmp_path, "name;phones;notes\n CAFE ;8 999 123 45 67;new\n", "b.csv")
    )
    assert (report.created, report.updated) == (0, 1)
    async with db.engine.connect() as conn:
        notes = (await conn.execute(select(ClientRow.name, ClientRow.notes))).all()
    assert [tuple(r) for r in notes] == [("CAFE", "new")]


@pytest.mark.parametrize(
    "data",
    [
        b"name;phones\n\xff\xfe\x00junk",
        b"name;notes\nA;" + b"x" * 1_200_000 + b"\n",
        b'name;notes\nA;"never closed\nB;x\n',
        bytes(range(256)) * 10,
    ],
)
async def test_broken_files_raise_a_clear_error_and_write_nothing(
    db: Database, managers: dict[str, int], tmp_path: Path, data: bytes
) -> None:
    """Binary junk, 1 MB cells and broken quoting raise BadFile (a CrmtelError) and leave the store empty."""
    from crmtel.exchange.csvio import BadFile

    path = tmp_path / "broken.csv"
    path.write_bytes(data)
    with pytest.raises(BadFile):
        await import_file(db, ImportKind.CLIENTS, path)
    assert await count(db, ClientRow) == 0


async def test_hostile_strings_are_stored_verbatim(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """Formula text, quotes, SQL-ish and emoji in a name are data: stored exactly, nothing executed."""
    hostile = "=cmd|' /C calc'!A0; DROP TABLE clients;-- \"😀\""
    text = 'name,phones\n"' + hostile.replace('"', '""') + '",+79161110001\n'
    report = await import_file(db, ImportKind.CLIENTS, write(tmp_path, text))
    assert report.errors == []
    found = await PartyRepository(db).lookup_raw("+79161110001")
    assert found.best is not None
    assert found.best.name == hostile


async def test_external_id_is_given_to_a_client_imported_without_one(
    db: Database, managers: dict[str, int], tmp_path: Path
) -> None:
    """A client first imported without external_id is adopted (not duplicated) when a file adds the id."""
    await import_file(db, ImportKind.CLIENTS, write(tmp_path, "name;phones\nCafe;+79991234567\n"))
    report = await import_file(
        db, ImportKind.CLIENTS, write(tmp_path, "code;name;phones\nK-7;Cafe;+79991234567\n", "b.csv")
    )
    assert (report.created, report.updated, report.warnings) == (0, 1, [])
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(ClientRow.external_id, ClientRow.name))).all()
    assert [tuple(r) for r in rows] == [("K-7", "Cafe")]
