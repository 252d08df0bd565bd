"""The manager's mobile: set from the CLI (any spelling, kept as E.164), refused when it is no personal line,
kept by a later `manager add` without --mobile, and exported as dialplan globals per extension."""

from __future__ import annotations

import json

import pytest

from crmtel.cli import build_parser
from crmtel.commands import mobile_globals_of
from crmtel.config import Settings
from crmtel.errors import CrmtelError
from crmtel.exchange.csvio import RawTable
from crmtel.exchange.importbase import ImportKind
from crmtel.exchange.importer import import_table
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.integration.test_web_app import running_app


async def run(argv: list[str], database_url: str) -> int:
    args = build_parser().parse_args(argv)
    code: int = await args.handler(args, Settings(database_url=database_url))
    return code


async def test_mobile_set_kept_listed_and_removed(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`manager add --mobile` and `manager mobile` store E.164; add without --mobile keeps it; no NUMBER clears."""
    repo = ManagerRepository(db)
    assert (
        await run(
            [
                "manager",
                "add",
                "--login",
                "anna",
                "--name",
                "Анна",
                "--extension",
                "101",
                "--mobile",
                "8 (916) 111-00-01",
            ],
            database_url,
        )
        == 0
    )
    assert "mobile +7 916 111-00-01" in capsys.readouterr().out
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile == "+79161110001"

    assert (
        await run(
            ["manager", "add", "--login", "anna", "--name", "Анна П.", "--extension", "101"], database_url
        )
        == 0
    )
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile == "+79161110001"
    assert anna.name == "Анна П."

    assert await run(["manager", "mobile", "anna", "+7 903 555-00-02"], database_url) == 0
    assert "mobile of 'anna': +7 903 555-00-02" in capsys.readouterr().out
    assert await run(["manager", "list", "--format", "json"], database_url) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["mobile"] == "+79035550002"

    assert await run(["manager", "mobile", "anna"], database_url) == 0
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile is None


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("101", "extension"),
        ("8 800 555-35-35", "not_personal"),
        ("+7 809 123-45-67", "not_personal"),
        ("abc", "invalid"),
    ],
)
async def test_a_number_nobody_answers_is_refused(
    db: Database, database_url: str, number: str, why: str
) -> None:
    """An extension, a toll-free or premium service or garbage is refused with its reason; nothing is stored."""
    repo = ManagerRepository(db)
    await repo.save(login="anna", name="Анна", extensions=("101",))
    with pytest.raises(CrmtelError, match=f"settings.mobile.{why}"):
        await run(["manager", "mobile", "anna", number], database_url)
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile is None
    with pytest.raises(CrmtelError, match="no manager with login 'nobody'"):
        await run(["manager", "mobile", "nobody", "+79161110001"], database_url)


async def test_mobiles_become_dialplan_globals(db: Database, database_url: str) -> None:
    """Every extension of an active manager with a mobile gets CRMTEL_MOBILE_<ext>, written by the dial rules."""
    repo = ManagerRepository(db)
    anna = await repo.save(login="anna", name="Анна", extensions=("101", "111"))
    boris = await repo.save(login="boris", name="Борис", extensions=("102",), active=False)
    await repo.save(login="vera", name="Вера", extensions=("103",))
    await repo.set_mobile(anna.id, "+79161110001")
    await repo.set_mobile(boris.id, "+79161110002")
    settings = Settings.model_validate(
        {
            "database_url": database_url,
            "ami": {"originate": {"dial_rules": [{"prefix": "+7", "replace": "8"}]}},
        }
    )
    assert await mobile_globals_of(settings, None) == [
        "CRMTEL_MOBILE_101=89161110001",
        "CRMTEL_MOBILE_111=89161110001",
    ]
    with pytest.raises(CrmtelError, match="no PBX named 'pbx9'"):
        await mobile_globals_of(settings, "pbx9")


async def test_followme_never_gets_a_mobile_the_policy_refuses(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mobile the PBX's click-to-call policy refuses (Kazakhstan's +7 7…, Abkhazia's +7 940, another country)
    gets no CRMTEL_MOBILE_<ext>: follow-me would forward every unanswered call there (toll fraud); it is named
    on stderr. Saving refuses such a mobile, but one kept from before a stricter policy stays in the database."""
    repo = ManagerRepository(db)
    anna = await repo.save(login="anna", name="Анна", extensions=("101",))
    await repo.set_mobile(anna.id, "+77011234567")
    boris = await repo.save(login="boris", name="Борис", extensions=("102",))
    vera = await repo.save(login="vera", name="Вера", extensions=("103",))
    await repo.set_mobile(boris.id, "+447911123456")
    await repo.set_mobile(vera.id, "+79161110003")
    settings = Settings.model_validate(
        {
            "database_url": database_url,
            "ami": {"originate": {"dial_rules": [{"prefix": "+7", "replace": "8"}]}},
        }
    )
    assert await mobile_globals_of(settings, None) == ["CRMTEL_MOBILE_103=89161110003"]
    err = capsys.readouterr().err
    assert "anna's mobile +77011234567" in err
    assert "boris's mobile +447911123456" in err
    widened = Settings.model_validate(
        {"database_url": database_url, "ami": {"originate": {"allow": ["+7[3489]?????????", "+44*"]}}}
    )
    assert await mobile_globals_of(widened, None) == [
        "CRMTEL_MOBILE_102=+447911123456",
        "CRMTEL_MOBILE_103=+79161110003",
    ]


async def test_import_sets_keeps_and_refuses_mobiles(db: Database) -> None:
    """A `mobile` column sets (any spelling → E.164) or clears (empty cell); a file without it keeps the stored
    mobile; a toll-free number is a row error naming the line, and nothing of that file is written."""
    repo = ManagerRepository(db)
    with_column = RawTable(
        ("login", "name", "extensions", "mobile"),
        [(2, ["anna", "Анна", "101", "8 916 111-00-01"]), (3, ["boris", "Борис", "102", ""])],
    )
    report = await import_table(db, ImportKind.MANAGERS, with_column)
    assert report.created == 2
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile == "+79161110001"

    without = RawTable(("login", "name", "extensions"), [(2, ["anna", "Анна П.", "101"])])
    await import_table(db, ImportKind.MANAGERS, without)
    anna = await repo.by_login("anna")
    assert anna is not None
    assert (anna.name, anna.mobile) == ("Анна П.", "+79161110001")

    bad = RawTable(
        ("login", "name", "mobile"), [(2, ["anna", "Анна", ""]), (3, ["boris", "Борис", "8 800 555-35-35"])]
    )
    report = await import_table(db, ImportKind.MANAGERS, bad)
    assert [(i.line, "settings.mobile.not_personal" in i.reason) for i in report.errors] == [(3, True)]
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile == "+79161110001"

    cleared = RawTable(("login", "name", "mobile"), [(2, ["anna", "Анна", ""])])
    await import_table(db, ImportKind.MANAGERS, cleared)
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile is None


async def test_the_manager_sets_their_own_mobile_on_the_page(db: Database) -> None:
    """PUT /api/me/mobile keeps any spelling as E.164 and /api/me returns it to its owner only; a toll-free
    number is a 400 naming why (in the manager's language), nothing stored; null clears it."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        async with anna.put("/api/me/mobile", json={"mobile": "8 (916) 111-00-01"}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["mobile"] == "+79161110001"
        async with anna.get("/api/me") as r:
            assert (await r.json())["mobile"] == "+79161110001"
        async with anna.put("/api/me/mobile", json={"mobile": "8 800 555-35-35"}) as r:
            assert r.status == 400
            body = await r.json()
        assert body["code"] == "settings.mobile.not_personal"
        assert "8 800 555-35-35" in body["error"]
        async with anna.get("/api/me") as r:
            assert (await r.json())["mobile"] == "+79161110001"
        async with rig.browser("boris") as boris, boris.get("/api/me") as r:
            assert (await r.json())["mobile"] is None
        async with anna.put("/api/me/mobile", json={"mobile": None}) as r:
            assert (await r.json())["mobile"] is None
    stored = await ManagerRepository(db).by_login("anna")
    assert stored is not None
    assert stored.mobile is None


@pytest.mark.parametrize(
    "number", ["+7 916 111-01-31;ext=5", "8 916 111-01-31 доб. 5", "+7 916 111-01-31 x5"]
)
async def test_a_mobile_with_an_extension_suffix_is_refused_on_every_path(
    db: Database, database_url: str, number: str
) -> None:
    """The PBX dials a mobile's E.164 number only, so a number with an extension after it is refused (page 400,
    CLI error, import row error), never kept with the extension silently dropped."""
    repo = ManagerRepository(db)
    await repo.save(login="anna", name="Анна", extensions=("101",))
    async with (
        running_app(db) as rig,
        rig.browser("anna") as anna,
        anna.put("/api/me/mobile", json={"mobile": number}) as r,
    ):
        assert r.status == 400, await r.text()
        body = await r.json()
    assert body["code"] == "settings.mobile.extension_suffix"
    assert number in body["error"]
    with pytest.raises(CrmtelError, match=r"settings\.mobile\.extension_suffix"):
        await run(["manager", "mobile", "anna", number], database_url)
    table = RawTable(("login", "name", "mobile"), [(2, ["anna", "Анна", number])])
    report = await import_table(db, ImportKind.MANAGERS, table)
    assert [(i.line, "settings.mobile.extension_suffix" in i.reason) for i in report.errors] == [(2, True)]
    stored = await repo.by_login("anna")
    assert stored is not None
    assert stored.mobile is None
