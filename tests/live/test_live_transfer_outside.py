"""A desk phone blind-transfers a client to an outside number (a REFER to 8999… through the trunk) on a real
Asterisk 22: the call stays the manager's who answered it, the number it went on to is noted, never an
extension."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.databases import PostgresRun, SqliteRun
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install, Queue
from tests.live.batch import Result, Scenario, run_batch
from tests.live.conftest import module_database
from tests.live.crmtel_side import Staff, manager_logins
from tests.live.rig import RigSpec, live_rig
from tests.live.sipp import Answers, Behaviour, BlindTransfers, Caller, Forwards

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES

STAFF = (Staff("hanna", "Hanna Ivanova", "128"),)
OUTSIDE = "89997770128"  # a partner's number behind the trunk
SPEC = RigSpec(
    staff=STAFF,
    queues=(Queue("q-out", ("PJSIP/128",)),),
    dids={"4950000031": "q-out"},
    default_queue="q-out",
    default_owner="hanna",
)
SCENARIOS = (Scenario("blind-transfer-outside", Caller("79035550031", "Send Me On", "4950000031", talk=7.0)),)
PHONES: dict[str, Behaviour] = {"128": BlindTransfers(ring=1.0, talk=1.5, to=OUTSIDE)}
WORLD: dict[str, Behaviour] = {OUTSIDE: Answers(ring=1.5)}


@dataclass
class Outside:
    result: Result
    logins: dict[int, str]


async def _run(install: Install, folder: Path, database_url: str) -> Outside:
    async with live_rig(install, folder, database_url, SPEC) as rig:
        results = await run_batch(rig, SCENARIOS, PHONES, WORLD)
        # CRMTEL_LIVE_SAVE=STEM keeps the recording and the PBX's Master.csv (the fast suite's trace was cut from them).
        stem = Path(os.environ.get("CRMTEL_LIVE_SAVE", str(folder / "outside")))
        rig.witness.save(stem)
        shutil.copyfile(rig.cfg.master_csv, stem.with_suffix(".Master.csv"))
        return Outside(results["blind-transfer-outside"], await manager_logins(database_url))


@pytest.fixture(scope="module")
def outside(
    live_install: Install, tmp_path_factory: pytest.TempPathFactory, _database_run: PostgresRun | SqliteRun
) -> Outside:
    """The one scenario, on a PBX and a crmtel of its own."""
    folder = tmp_path_factory.mktemp("live-outside")
    return asyncio.run(_run(live_install, folder, module_database(_database_run, folder)))


def test_the_transfer_to_an_outside_number_really_happened_on_the_pbx(outside: Outside) -> None:
    """The PBX took 128's REFER and bridged the caller with the outside number through the trunk."""
    result = outside.result
    assert any(m.event == "BlindTransfer" for m in result.events), result.describe()
    assert result.truth.connected[-1] == "trunk", result.describe()


def test_a_call_blind_transferred_outside_stays_the_managers_who_answered(outside: Outside) -> None:
    """answered_by 128 (hanna), the number it was sent on to noted, no outside number as an extension."""
    result = outside.result
    record = result.record
    assert record.answered_by == "128", result.describe()
    assert record.rang == ("128",), result.describe()
    assert record.dialled == "4950000031", result.describe()
    assert record.outcome is not None
    assert record.outcome.value == "answered"
    assert record.transferred_to == "+79997770128", result.describe()
    assert "transferred_from" not in record.extra, result.describe()
    assert record.manager_id is not None, result.describe()
    assert outside.logins.get(record.manager_id) == "hanna", result.describe()


# review26b: 128 blind-transfers the caller to colleague 129, whose phone forwards (302) to his own mobile.
FORWARDING_STAFF = (*STAFF, Staff("ivan", "Ivan Petrov", "129", mobile="+79160000129"))
FORWARDING_SPEC = RigSpec(
    staff=FORWARDING_STAFF,
    queues=(Queue("q-out", ("PJSIP/128",)),),
    dids={"4950000031": "q-out"},
    default_queue="q-out",
    default_owner="hanna",
)
FORWARDING_PHONES: dict[str, Behaviour] = {
    "128": BlindTransfers(ring=1.0, talk=1.5, to="129"),
    "129": Forwards("89160000129"),
}
FORWARDING_WORLD: dict[str, Behaviour] = {"89160000129": Answers(ring=1.5)}


async def test_a_colleague_forwarding_a_transferred_call_to_their_mobile_is_no_transfer_out(
    live_install: Install, tmp_path: Path, database_for: Callable[[Path], str]
) -> None:
    """The trunk leg dialled 129's mobile, not the transfer's target 129: no transferred_to (it was 129's own
    mobile, "+79160000129", before), as the CDR path records the same call."""
    folder = tmp_path / "live"
    scenario = Scenario("blind-transfer-forwarded", Caller("79035550031", "Fwd", "4950000031", talk=8.0))
    async with live_rig(live_install, folder, database_for(folder), FORWARDING_SPEC) as rig:
        results = await run_batch(rig, (scenario,), FORWARDING_PHONES, FORWARDING_WORLD)
    result = results["blind-transfer-forwarded"]
    assert any(m.event == "BlindTransfer" for m in result.events), result.describe()
    assert result.record.transferred_to is None, result.describe()
    assert result.record.outcome is not None
    assert result.record.outcome.value == "answered", result.describe()
