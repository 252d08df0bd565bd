"""Over real TCP into the database: escaped and overwritten caller names are stored as the network sent them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from crmtel.calls.commands import replay_stream
from crmtel.config import CallsSettings, Settings
from crmtel.fakepbx.server import load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import LeadRow
from tests.fixtures.callerid import with_dialplan_name, with_network_name


async def test_missed_call_from_obrien_makes_a_lead_named_as_the_network_sent_it(
    db: Database, traces_dir: Path
) -> None:
    """``O\\'Brien & Sons`` (escaped), then CALLERID(name) set to the CRM's name: record and lead say O'Brien."""
    await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    stream = with_network_name(load_ami(traces_dir / "direct-caller-gives-up.ami"), "O'Brien & Sons")
    stream = with_dialplan_name(stream, 'ООО "Ромашка"', route_reason="personal manager of 'O'Brien & Sons'")
    settings = Settings(database_url=db.url, calls=CallsSettings(default_owner="anna"))
    await replay_stream(settings, db, stream, settle=0.05)
    (stored,) = await CallRepository(db).between()
    assert stored.record.caller_name == "O'Brien & Sons"
    assert stored.record.route_reason == "personal manager of 'O'Brien & Sons'"
    async with db.session() as session:
        names = list((await session.execute(select(LeadRow.name))).scalars())
    assert names == ["O'Brien & Sons"]
