"""Follow-me's CRMTEL_MOBILE_<ext> on a real Asterisk 22 follow the manager's mobile: `crmtel manager mobile` and
the manager's page rewrite [mobile] globals_file (included inside [globals] as deploy/asterisk/README.md says),
and after the `dialplan reload` crmtel-mobiles.path runs the PBX holds the new mobile — a removed one empty, not
the old number; a mobile the click-to-call policy bars is refused by the page and changes nothing."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install
from tests.live.conftest import module_database
from tests.live.crmtel_side import Staff, logged_in
from tests.live.rig import LiveRig, RigSpec, live_rig

pytestmark = RACES_PROCESSES

SPEC = RigSpec(staff=(Staff("anna", "Анна Смирнова", "181", password="pw-anna", mobile="+79160000081"),))


@dataclass(frozen=True, slots=True)
class Globals:
    """CRMTEL_MOBILE_181 as the PBX held it after each step (None: no such global), and the page's refusal."""

    seeded: str | None
    by_cli: str | None
    refused: tuple[int, str]
    after_refused: str | None
    removed_on_page: str | None


def _global(rig: LiveRig) -> str | None:
    """CRMTEL_MOBILE_181 after the `dialplan reload` that crmtel-mobiles.path runs when the file changes."""
    rig.pbx.cli("dialplan reload")
    shown = rig.pbx.cli("dialplan show globals")
    found = re.search(r"^\s*CRMTEL_MOBILE_181=(.*)$", shown, re.MULTILINE)
    return None if found is None else found.group(1).strip()


async def _put(http: aiohttp.ClientSession, mobile: str | None) -> tuple[int, str]:
    csrf = next((c.value for c in http.cookie_jar if c.key == "crmtel_csrf"), None)
    headers = {"X-CSRF-Token": csrf, "Accept-Language": "ru"} if csrf else {"Accept-Language": "ru"}
    async with http.put("/api/me/mobile", json={"mobile": mobile}, headers=headers) as response:
        body = await response.json()
        return response.status, str(body.get("code", ""))


async def _run(install: Install, folder: Path, database_url: str) -> Globals:
    async with live_rig(install, folder, database_url, SPEC) as rig:
        seeded = await asyncio.to_thread(_global, rig)
        code, out = await rig.crmtel_cli("manager", "mobile", "anna", "8 903 000-00-81")
        assert code == 0, out
        by_cli = await asyncio.to_thread(_global, rig)
        async with logged_in(rig.web_url, "anna", "pw-anna") as (http, _browser):
            refused = await _put(http, "+7 701 000 00 81")
            after_refused = await asyncio.to_thread(_global, rig)
            status, _ = await _put(http, None)
            assert status == 200
        removed = await asyncio.to_thread(_global, rig)
        return Globals(seeded, by_cli, refused, after_refused, removed)


@pytest.fixture(scope="module")
def seen(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> Globals:
    folder = tmp_path_factory.mktemp("live-mobile-globals")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_the_pbx_follows_every_change_of_the_mobile(seen: Globals) -> None:
    """Seeded, then changed from the CLI, then removed on the page: the PBX's global is each time the mobile
    as the dial rules write it, and empty once removed (a reload alone would keep the old number)."""
    assert (seen.seeded, seen.by_cli, seen.removed_on_page) == ("89160000081", "89030000081", "")


def test_a_barred_mobile_is_refused_on_the_page_and_the_pbx_keeps_the_last_one(seen: Globals) -> None:
    """Kazakhstan's +7 701 is outside the policy: 400 settings.mobile.not_allowed, the global unchanged."""
    assert seen.refused == (400, "settings.mobile.not_allowed")
    assert seen.after_refused == "89030000081"
