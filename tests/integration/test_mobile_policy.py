"""A mobile the click-to-call policy refuses is refused when it is saved — on the page, from the CLI, by an
import — with a translated reason; and every saved change rewrites follow-me's CRMTEL_MOBILE_<ext> globals."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmtel.cli import build_parser
from crmtel.config import Settings
from crmtel.errors import CrmtelError
from crmtel.exchange.csvio import RawTable
from crmtel.exchange.importbase import ImportKind
from crmtel.exchange.importer import import_table
from crmtel.managers.models import MobilePolicy
from crmtel.managers.sync import mobile_sync
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.integration.test_web_app import running_app

KAZAKH = "+7 701 123 45 67"  # +7 like Russia, billed abroad: outside the default allow pattern
BRITISH = "+44 7911 123456"
ABKHAZ = "+7 940 123 45 67"  # inside +7, denied by prefix


async def run(argv: list[str], settings: Settings) -> int:
    args = build_parser().parse_args(argv)
    code: int = await args.handler(args, settings)
    return code


@pytest.mark.parametrize("number", [KAZAKH, BRITISH, ABKHAZ])
async def test_the_page_refuses_a_mobile_the_pbx_may_not_dial(db: Database, number: str) -> None:
    """PUT /api/me/mobile answers 400 settings.mobile.not_allowed naming the number and the PBX, in Russian or
    English as the manager reads; the stored mobile is unchanged."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        async with anna.put("/api/me/mobile", json={"mobile": "+7 916 111-00-01"}) as r:
            assert r.status == 200, await r.text()
        async with anna.put(
            "/api/me/mobile", json={"mobile": number}, headers={"Accept-Language": "ru"}
        ) as r:
            assert r.status == 400
            ru = await r.json()
        async with anna.put(
            "/api/me/mobile", json={"mobile": number}, headers={"Accept-Language": "en"}
        ) as r:
            assert r.status == 400
            en = await r.json()
    assert ru["code"] == en["code"] == "settings.mobile.not_allowed"
    assert ru["error"].startswith(f"{number} нельзя указать как мобильный: АТС pbx1 не может")
    assert en["error"].startswith(f"{number} cannot be your mobile: PBX pbx1 may not dial it")
    assert ru["fields"] == [{"field": "mobile", "message": ru["error"]}]
    stored = await ManagerRepository(db).by_login("anna")
    assert stored is not None
    assert stored.mobile == "+79161110001"


async def test_the_policy_of_the_managers_own_pbx_decides(db: Database) -> None:
    """With two PBXs, the one whose `extensions` claim the manager's extension decides: a British mobile is
    kept for a manager on the PBX that allows +44, refused for one on the PBX that does not."""
    policy = MobilePolicy.of(
        Settings.model_validate(
            {
                "ami": {"name": "msk", "originate": {"extensions": ["1??"]}},
                "pbx": [{"name": "lon", "originate": {"extensions": ["2??"], "allow": ["+44*"]}}],
            }
        )
    )
    assert policy.parse(BRITISH, ("201",)) == "+447911123456"
    with pytest.raises(CrmtelError, match="PBX msk's click-to-call policy refuses it"):
        policy.parse(BRITISH, ("101",))
    # Extensions no PBX claims: every PBX must allow it.
    with pytest.raises(CrmtelError, match=r"settings\.mobile\.not_allowed"):
        policy.parse(BRITISH, ())
    assert policy.parse("", ("101",)) is None


async def test_cli_and_import_refuse_it_too(db: Database, database_url: str) -> None:
    """`manager add --mobile`, `manager mobile` and a `mobile` column refuse a number the policy bars, naming
    why; nothing of it is stored; a widened policy lets the same number through."""
    settings = Settings(database_url=database_url)
    repo = ManagerRepository(db)
    add = ["manager", "add", "--login", "anna", "--name", "Анна", "--extension", "101", "--mobile", KAZAKH]
    with pytest.raises(CrmtelError, match=r"pbx1's click-to-call policy refuses it.*nothing changed"):
        await run(add, settings)
    assert await repo.by_login("anna") is None
    await repo.save(login="anna", name="Анна", extensions=("101",))
    with pytest.raises(CrmtelError, match=r"settings\.mobile\.not_allowed"):
        await run(["manager", "mobile", "anna", BRITISH], settings)
    table = RawTable(("login", "name", "extensions", "mobile"), [(2, ["anna", "Анна", "101", ABKHAZ])])
    report = await import_table(db, ImportKind.MANAGERS, table)
    assert [(i.line, "settings.mobile.not_allowed" in i.reason) for i in report.errors] == [(2, True)]
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile is None

    widened = Settings.model_validate(
        {"database_url": database_url, "ami": {"originate": {"allow": ["+44*"]}}}
    )
    assert await run(["manager", "mobile", "anna", BRITISH], widened) == 0
    # An import is checked against the policy it is given (`crmtel import` gives the config's).
    report = await import_table(
        db,
        ImportKind.MANAGERS,
        RawTable(("login", "name", "mobile"), [(2, ["anna", "Анна", BRITISH])]),
        mobiles=MobilePolicy.of(widened),
    )
    assert report.errors == []
    anna = await repo.by_login("anna")
    assert anna is not None
    assert anna.mobile == "+447911123456"


def _globals(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith(";")]


async def test_every_path_rewrites_the_followme_globals(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """`manager mobile`, `manager deactivate`, an import and the page each rewrite mobile.globals_file: the
    mobile set now is there as the dial rules write it; a removed one, an inactive manager's and one on an
    extension the manager no longer has are written empty (a dialplan reload keeps a global the file drops)."""
    target = tmp_path / "extensions_crmtel_mobiles.conf"
    settings = Settings.model_validate(
        {
            "database_url": database_url,
            "ami": {"originate": {"dial_rules": [{"prefix": "+7", "replace": "8"}]}},
            "mobile": {"globals_file": str(target)},
        }
    )
    repo = ManagerRepository(db)
    await repo.save(login="anna", name="Анна", extensions=("101", "111"))
    await repo.save(login="boris", name="Борис", extensions=("102",))

    assert await run(["manager", "mobile", "anna", "8 916 111-00-01"], settings) == 0
    assert _globals(target) == [
        "CRMTEL_MOBILE_101=89161110001",
        "CRMTEL_MOBILE_111=89161110001",
        "CRMTEL_MOBILE_102=",
    ]
    assert target.stat().st_mode & 0o777 == 0o640

    assert await run(["manager", "mobile", "boris", "+7 903 555-00-02"], settings) == 0
    assert "CRMTEL_MOBILE_102=89035550002" in _globals(target)
    assert await run(["manager", "deactivate", "boris"], settings) == 0
    assert "CRMTEL_MOBILE_102=" in _globals(target)

    # Anna moves to 121 (an import): 111 no longer belongs to anyone, but the PBX still holds it.
    moved = RawTable(("login", "name", "extensions"), [(2, ["anna", "Анна", "101;121"])])
    assert (await import_table(db, ImportKind.MANAGERS, moved)).errors == []
    sync = mobile_sync(settings, db)
    assert sync is not None
    await sync()
    assert _globals(target) == [
        "CRMTEL_MOBILE_101=89161110001",
        "CRMTEL_MOBILE_121=89161110001",
        "CRMTEL_MOBILE_102=",
        "CRMTEL_MOBILE_111=",
    ]

    async with (
        running_app(db, mobiles=MobilePolicy.of(settings), on_mobile=sync) as rig,
        rig.browser("anna") as anna,
        anna.put("/api/me/mobile", json={"mobile": None}) as r,
    ):
        assert r.status == 200, await r.text()
    # (The rig seeds its own managers again: anna back on 101 alone, boris active, vera on 103.)
    assert sorted(_globals(target)) == [
        "CRMTEL_MOBILE_101=",
        "CRMTEL_MOBILE_102=89035550002",
        "CRMTEL_MOBILE_103=",
        "CRMTEL_MOBILE_111=",
        "CRMTEL_MOBILE_121=",
    ]


async def test_config_mobile_globals_prints_or_writes(
    db: Database, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`crmtel config mobile-globals -` prints the file; with --output it writes it there."""
    repo = ManagerRepository(db)
    anna = await repo.save(login="anna", name="Анна", extensions=("101",))
    await repo.set_mobile(anna.id, "+79161110001")
    settings = Settings(database_url=database_url)
    assert await run(["config", "mobile-globals", "--output", "-"], settings) == 0
    assert "CRMTEL_MOBILE_101=+79161110001\n" in capsys.readouterr().out
    out = tmp_path / "m.conf"
    assert await run(["config", "mobile-globals", "--output", str(out)], settings) == 0
    assert _globals(out) == ["CRMTEL_MOBILE_101=+79161110001"]
    assert f"1 follow-me mobile(s) written to {out}" in capsys.readouterr().err
