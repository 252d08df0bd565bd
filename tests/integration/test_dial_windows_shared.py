"""The click-to-call windows held across processes: two DialServices (two cluster nodes, or a node and
``crmtel call``) on one database count a manager's and a PBX's attempts together through the audit log, also
when their clicks arrive at the same instant."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from crmtel.ami.protocol import Message
from crmtel.config import OriginateSettings
from crmtel.dial.models import DialRefused
from crmtel.dial.service import DialService
from crmtel.domain import Manager
from crmtel.store.db import Database
from crmtel.store.dial_attempts import DialAttempts
from crmtel.store.managers import ManagerRepository


class _Pbx:
    """Answers every Originate as picked up, and counts them."""

    def __init__(self) -> None:
        self.originates: list[dict[str, str]] = []

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        self.originates.append(dict(fields))
        return [Message((("Response", "Success"),))]


def _node(db: Database, pbx: _Pbx, **limits: float) -> DialService:
    settings = OriginateSettings(dedup_seconds=0, **limits)
    return DialService({"office": pbx}, {"office": settings}, audit=DialAttempts(db))


async def _manager(db: Database, login: str, extension: str) -> Manager:
    managers = ManagerRepository(db)
    await managers.save(login=login, name=login.title(), extensions=(extension,))
    found = await managers.by_login(login)
    assert found is not None
    return found


async def _click(node: DialService, number: str, manager: Manager | None) -> str:
    try:
        request = await node.prepare(number, manager=manager, extension=None if manager else "102")
        if manager is None:
            await node.call(request)
        else:
            await node.start(request, manager_id=manager.id)
    except DialRefused as refused:
        return refused.key
    return "placed"


async def test_a_managers_window_counts_the_clicks_of_every_node(db: Database) -> None:
    """Boris clicks on node A three times: node B (whose own window is empty) refuses his fourth with
    dial.rate_manager and a Retry-After inside the window; Anna still calls from B."""
    pbx = _Pbx()
    boris, anna = await _manager(db, "boris", "102"), await _manager(db, "anna", "101")
    a, b = _node(db, pbx, max_per_manager=3), _node(db, pbx, max_per_manager=3)
    assert [await _click(a, f"+7903123456{i}", boris) for i in range(3)] == ["placed"] * 3
    request = await b.prepare("+79031234569", manager=boris)
    with pytest.raises(DialRefused) as refused:
        await b.start(request, manager_id=boris.id)
    assert refused.value.key == "dial.rate_manager"
    assert 1 <= int(refused.value.params["retry_after"]) <= 60
    assert await _click(b, "+79031234569", anna) == "placed"
    for node in (a, b):
        await node.idle()
    assert len(pbx.originates) == 4
    logged = await DialAttempts(db).between(datetime.now(UTC) - timedelta(hours=1), login="boris")
    assert [x.decision for x in logged] == ["refused", "placed", "placed", "placed"]
    assert logged[0].reason == "dial.rate_manager"


async def test_clicks_at_the_same_instant_on_two_nodes_never_pass_a_window_together(db: Database) -> None:
    """40 clicks of Boris at once, half on each node: exactly max_per_manager are placed (counting and writing
    the attempt are one step under a lock per PBX); then 40 script calls at once on both: the PBX's window."""
    pbx = _Pbx()
    boris = await _manager(db, "boris", "102")
    a, b = (
        _node(db, pbx, max_per_manager=5, max_per_pbx=12),
        _node(db, pbx, max_per_manager=5, max_per_pbx=12),
    )
    outcomes = await asyncio.gather(*(_click((a, b)[i % 2], f"+7916{i:07d}", boris) for i in range(40)))
    for node in (a, b):
        await node.idle()
    assert outcomes.count("placed") == 5, outcomes
    assert set(outcomes) == {"placed", "dial.rate_manager"}
    outcomes = await asyncio.gather(*(_click((a, b)[i % 2], f"+7917{i:07d}", None) for i in range(40)))
    assert outcomes.count("placed") == 7, outcomes  # 12 on the PBX in the window, 5 of them Boris's
    assert len(pbx.originates) == 12
