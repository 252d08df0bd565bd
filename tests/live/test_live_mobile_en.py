"""The confirmation prompt in English ([mobile] language = "en"): the same "via my mobile" click on a real
Asterisk 22 plays Debian's asterisk-core-sounds-en "followme/options" and goes through once 1 is pressed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install
from tests.live.conftest import module_database
from tests.live.crmtel_side import Staff
from tests.live.rig import RigSpec, live_rig
from tests.live.sipp import Answers, Confirms, NeverAnswers
from tests.live.test_live_mobile import SOUNDS, Click, _click

pytestmark = RACES_PROCESSES

PROMPT = SOUNDS / "en" / "followme" / "options.gsm"
SPEC = RigSpec(
    staff=(Staff("anna", "Anna Smith", "161", password="pw-anna", mobile="+79160000061"),),
    mobile={"sounds": str(SOUNDS), "language": "en", "confirm_seconds": 3},
    outgoing_callerid="74950000061",
)


async def _run(install: Install, folder: Path, database_url: str) -> tuple[Click, str]:
    async with live_rig(install, folder, database_url, SPEC) as rig:
        await asyncio.to_thread(rig.pbx.cli, "core set verbose 3")
        await rig.set_phones({"161": NeverAnswers()})
        await rig.set_world(
            {"89160000061": Confirms(ring=1.0, after=1.0), "89991110061": Answers(ring=1.0, talk=2.0)}
        )
        click = await _click(rig, "anna", "+79991110061", {"answered", "unconfirmed", "no_answer", "failed"})
        return click, rig.pbx.messages()


@pytest.fixture(scope="module")
def english(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> tuple[Click, str]:
    if not PROMPT.exists():
        pytest.skip(
            "Debian's asterisk-core-sounds-en-gsm is not installed (apt-get install asterisk-core-sounds-en-gsm)"
        )
    folder = tmp_path_factory.mktemp("live-mobile-en")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_the_english_prompt_confirms_and_the_client_is_dialled(english: tuple[Click, str]) -> None:
    """[mobile] language "en": the PBX plays the English followme/options to the mobile (never the Russian one),
    anna presses 1, the client is dialled and the call is hers."""
    click, log = english
    assert [m["status"] for m in click.results] == ["answered"], click.results
    assert f"Playing '{PROMPT}' (language 'en')" in log
    assert "/ru/followme/options" not in log
    [record] = click.records
    assert (record.answered_by, record.answered_on, record.dialled) == ("161", "+79160000061", "89991110061")
