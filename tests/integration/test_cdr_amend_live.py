"""Calls crmtel lost half-way (the AMI link dropped), closed by the resync and amended from the CDR of the very
same live run (``phones.Master.csv``): stored as the live tracker stores them had it seen them to the end —
a forwarded call keeps the number it was answered on, an attended transfer ends with the phone that took
over, owned by its manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmtel.calls.service import CallService
from crmtel.cdr.csvsource import CsvCdrSource
from crmtel.cdr.service import Backfill, CdrService
from crmtel.config import CallsSettings
from crmtel.domain import CallRecord, Outcome
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository
from crmtel.store.watermarks import WatermarkRepository
from tests.fixtures.traces import LIVE_TRACES_DIR, load_messages

# The traces' t = 0 on the PBX's clock (Master.csv of the same run, UTC): the forwarded call's first event,
# t = 1.719, is its CDR start 12:29:52.
BASE = datetime(2026, 12, 6, 12, 29, 50, 281_000, tzinfo=UTC)


async def _lost_then_amended(
    db: Database, scenario: str, linkedid: str, lost_at: float
) -> tuple[CallRecord, int]:
    """Feed the trace up to ``lost_at`` s, lose the link, resync with no channel left, amend from the CDR."""
    calls = CallService(db, CallsSettings(), PartyRepository(db))
    source = CsvCdrSource(LIVE_TRACES_DIR / "phones.Master.csv", UTC)
    calls.amender = CdrService(
        calls,
        WatermarkRepository(db),
        {"pbx1": Backfill("pbx1", source, calls)},
        {"pbx1": timedelta(0)},
    )
    for item in load_messages(scenario, LIVE_TRACES_DIR):
        if item.t < lost_at:
            await calls.on_event("pbx1", item.message, BASE + timedelta(seconds=item.t))
    await calls.flush()
    await calls.on_lost("pbx1", BASE + timedelta(seconds=lost_at))
    await calls.on_resync("pbx1", [], BASE + timedelta(seconds=40))
    await calls.flush()
    stored = await CallRepository(db).get("pbx1", linkedid)
    assert stored is not None
    return stored.record, stored.id


async def test_a_forwarded_call_amended_from_the_cdr_keeps_the_number_it_was_answered_on(
    db: Database,
) -> None:
    """crmtel saw 127 ring and the mobile dialled, then lost the link: the CDR's answer on the trunk leg to
    +79997770127 makes it 127's answered call ON that number (it lost ``answered_on`` before)."""
    fedor = await ManagerRepository(db).save(login="fedor", name="Fedor", extensions=("127",))
    record, _ = await _lost_then_amended(db, "forwarded-to-mobile", "1796560192.5", 2.0)
    assert (record.outcome, record.answered_by, record.answered_on) == (
        Outcome.ANSWERED,
        "127",
        "+79997770127",
    )
    assert record.manager_id == fedor.id


async def test_an_attended_transfer_crmtel_did_not_see_ends_with_the_phone_that_took_over(
    db: Database,
) -> None:
    """crmtel saw 125 answer, then lost the link before the *2 attended transfer to 126: the CDR saw the
    call go on, so 126 answered it (125 handed it over) and 126's manager owns it — not the stale 125/g."""
    managers = ManagerRepository(db)
    await managers.save(login="g", name="G", extensions=("125",))
    h = await managers.save(login="h", name="H", extensions=("126",))
    record, _ = await _lost_then_amended(db, "attended-transfer", "1796560192.6", 3.0)
    assert (record.outcome, record.answered_by) == (Outcome.ANSWERED, "126")
    assert record.manager_id == h.id
