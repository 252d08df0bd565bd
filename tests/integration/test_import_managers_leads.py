"""Importing managers (passwords hashed, extensions moved) and leads (keyed by phone)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from crmtel.domain import Category, LeadStatus, PartyKind, Role
from crmtel.exchange.importer import ImportKind, import_file
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import LeadRow, ManagerRow, PhoneRow
from crmtel.store.parties import NewClient, PartyRepository

MANAGERS = (
    "login;name;extensions;role;speciality;active;password\n"
    "anna;Anna Smirnova;101;manager;retail;yes;\n"
    "boris;Boris Ivanov;102, 112;manager;wholesale;yes;\n"
    "olga;Olga Petrova;100;head;;yes;change-me-now\n"
)
LEADS = (
    "name,company,phones,email,source,status,refusal_reason,manager\n"
    'Sergey,OOO Stroy,"+7 926 100-20-30; +7 495 700-80-90",sergey@stroy.example,site,new,,\n'
    "Elena,,+7 925 111-11-11,,phone call,in_work,,anna\n"
    "Pavel,Beta LLC,+7 917 999-88-77,,exhibition,refused,too expensive,\n"
)


def write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_managers_import_hashes_passwords_and_is_idempotent(db: Database, tmp_path: Path) -> None:
    """Managers land with roles and extensions; the password works for login; a re-import changes nothing."""
    path = write(tmp_path, MANAGERS, "managers.csv")
    first = await import_file(db, ImportKind.MANAGERS, path)
    assert (first.created, first.errors) == (3, [])
    repo = ManagerRepository(db)
    olga = await repo.authenticate("olga", "change-me-now")
    assert olga is not None
    assert olga.role is Role.HEAD
    boris = await repo.by_extension("112")
    assert boris is not None
    assert boris.speciality is Category.WHOLESALE
    async with db.engine.connect() as conn:
        stored = (
            await conn.execute(select(ManagerRow.password_hash).where(ManagerRow.login == "olga"))
        ).scalar()
    assert stored is not None
    assert "change-me-now" not in stored
    again = await import_file(db, ImportKind.MANAGERS, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert len(await repo.all()) == 3


async def test_extension_of_a_manager_outside_the_file_is_an_error(db: Database, tmp_path: Path) -> None:
    """Giving a new manager an extension that a stored manager keeps is refused with its line."""
    await ManagerRepository(db).save(login="zoe", name="Zoe", extensions=("101",))
    report = await import_file(db, ImportKind.MANAGERS, write(tmp_path, MANAGERS, "m.csv"))
    assert [str(e) for e in report.errors] == ["line 2: extension 101 belongs to manager 'zoe'"]
    assert len(await ManagerRepository(db).all()) == 1


async def test_extensions_move_between_managers_of_the_file(db: Database, tmp_path: Path) -> None:
    """Swapping two managers' extensions in one file works (no unique-constraint clash)."""
    await import_file(db, ImportKind.MANAGERS, write(tmp_path, MANAGERS, "m.csv"))
    swapped = "login;name;extensions\nanna;Anna Smirnova;102\nboris;Boris Ivanov;101\n"
    report = await import_file(db, ImportKind.MANAGERS, write(tmp_path, swapped, "s.csv"))
    assert (report.updated, report.errors) == (2, [])
    anna = await ManagerRepository(db).by_extension("102")
    assert anna is not None
    assert anna.login == "anna"


async def test_leads_import_and_reimport_by_phone(db: Database, tmp_path: Path) -> None:
    """Leads are created with status and manager; re-importing (one number written differently) updates them."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    first = await import_file(db, ImportKind.LEADS, write(tmp_path, LEADS, "leads.csv"))
    assert (first.created, first.errors) == (3, [])
    changed = "name;phones;status;refusal_reason\nSergey K.;84957008090;refused;went elsewhere\n"
    second = await import_file(db, ImportKind.LEADS, write(tmp_path, changed, "again.csv"))
    assert (second.created, second.updated) == (0, 1)
    async with db.engine.connect() as conn:
        leads = (await conn.execute(select(func.count()).select_from(LeadRow))).scalar_one()
        phones = (await conn.execute(select(func.count()).select_from(PhoneRow))).scalar_one()
    assert (leads, phones) == (3, 4)
    found = await PartyRepository(db).lookup_raw("+79261002030")
    assert found.best is not None
    assert (found.best.kind, found.best.name) == (PartyKind.LEAD, "Sergey K.")


async def test_lead_errors_block_the_whole_file(db: Database, tmp_path: Path) -> None:
    """Unknown manager and a refused lead without reason: both reported by line, no lead created."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    text = LEADS + "Ivan,,+79170000001,,,,,nobody\nOleg,,+79170000002,,,refused,,\n"
    report = await import_file(db, ImportKind.LEADS, write(tmp_path, text, "leads.csv"))
    assert [str(e) for e in report.errors] == [
        "line 5: unknown manager login 'nobody'",
        "line 6: status refused needs a refusal_reason",
    ]
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(LeadRow))).scalar_one() == 0


async def test_lead_number_of_a_client_is_a_duplicate_warning(db: Database, tmp_path: Path) -> None:
    """A lead whose number belongs to a client is imported and the duplicate is reported."""
    client = await PartyRepository(db).add_client(NewClient(name="Vector", phones=("+79251111111",)))
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    report = await import_file(db, ImportKind.LEADS, write(tmp_path, LEADS, "leads.csv"))
    assert [str(w) for w in report.warnings] == [
        f"line 3: duplicate number +79251111111: also client #{client.id}"
    ]
    found = await PartyRepository(db).lookup_raw("+79251111111")
    assert [m.kind for m in found.matches] == [PartyKind.CLIENT, PartyKind.LEAD]


async def test_two_rows_matching_one_stored_lead_are_an_error(db: Database, tmp_path: Path) -> None:
    """Two file rows whose numbers belong to the same stored lead would merge silently: an error instead."""
    await import_file(db, ImportKind.LEADS, write(tmp_path, LEADS.replace(",anna\n", ",\n"), "leads.csv"))
    text = "name;phones\nS1;+79261002030\nS2;+74957008090\n"
    report = await import_file(db, ImportKind.LEADS, write(tmp_path, text, "split.csv"))
    assert len(report.errors) == 1
    assert report.errors[0].line == 3
    assert "same stored lead" in report.errors[0].reason
    lead_names = {m.name for m in (await PartyRepository(db).lookup_raw("+79261002030")).matches}
    assert lead_names == {"Sergey"}


async def test_lead_status_is_read_case_and_space_insensitively(db: Database, tmp_path: Path) -> None:
    """A status written 'In Work' is read as in_work."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",))
    await import_file(db, ImportKind.LEADS, write(tmp_path, LEADS.replace("in_work", "In Work"), "leads.csv"))
    async with db.engine.connect() as conn:
        status = (await conn.execute(select(LeadRow.status).where(LeadRow.name == "Elena"))).scalar_one()
    assert status == LeadStatus.IN_WORK.value
