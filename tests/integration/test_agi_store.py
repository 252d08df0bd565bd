"""Routing against the real record store: FastAGI over TCP, failing open, and ``route explain``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from crmtel.config import RoutingSettings, Settings
from crmtel.domain import Role
from crmtel.routing import commands
from crmtel.routing.agi import AgiServer
from crmtel.routing.rules import last_month
from crmtel.routing.service import RoutingService
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, PartyRepository
from tests.integration.test_agi_server import env, fake_asterisk


async def _seed(db: Database) -> None:
    anna = await ManagerRepository(db).save(login="anna", name="Анна Смирнова", extensions=("101",))
    gone = await ManagerRepository(db).save(login="old", name="Old", extensions=("109",), active=False)
    parties = PartyRepository(db)
    month = last_month(datetime.now(UTC).date())
    await parties.add_client(
        NewClient(
            name="Romashka",
            phones=("8 916 111-00-01",),
            manager_id=anna.id,
            turnover=Decimal(5),
            turnover_month=month,
        )
    )
    await parties.add_client(
        NewClient(
            name="Big",
            phones=("+79162220002",),
            manager_id=gone.id,
            turnover=Decimal(200_000),
            turnover_month=month,
        )
    )
    assert anna.role is Role.MANAGER


async def test_agi_routes_from_the_real_store(db: Database) -> None:
    """A stored client reaches their manager; an inactive manager's big client gets the wholesale queue."""
    await _seed(db)
    service = RoutingService(PartyRepository(db), RoutingSettings())
    async with AgiServer(service, "127.0.0.1", 0) as agi:
        anna = (await fake_asterisk(agi.port, env(caller="89161110001"))).variables
        big = (await fake_asterisk(agi.port, env(caller="+79162220002"))).variables
    assert (anna["CRMTEL_ROUTE_KIND"], anna["CRMTEL_ROUTE_TARGET"], anna["CRMTEL_CALLER_NAME"]) == (
        "extension",
        "101",
        "Romashka",
    )
    assert (big["CRMTEL_ROUTE_KIND"], big["CRMTEL_ROUTE_TARGET"]) == ("queue", "wholesale")


async def test_broken_database_fails_open(tmp_path: Path) -> None:
    """With a database file that is not a database the AGI answers nothing (the dialplan's default queue)."""
    path = tmp_path / "crmtel.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    broken = Database(f"sqlite+aiosqlite:///{path}")
    try:
        service = RoutingService(PartyRepository(broken), RoutingSettings())
        async with AgiServer(service, "127.0.0.1", 0) as agi:
            assert (await fake_asterisk(agi.port, env())).commands == []
        await service.close()
    finally:
        await broken.dispose()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_route_explain_lists_every_rule(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``route explain`` prints the decision and every rule considered, the deciding one marked."""
    await _seed(db)
    args = _parse(["route", "explain", "+7 916 222-00-02", "--did", "4951234567"])
    assert await args.handler(args, Settings(database_url=database_url)) == 0
    out = capsys.readouterr().out
    assert "route:    queue wholesale" in out
    assert "caller:   +7 916 222-00-02 -> +79162220002 (e164)" in out
    assert "    personal manager: personal manager Old of client 'Big' is inactive" in out
    assert "  * turnover: " in out


async def test_route_explain_json(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``route explain --json`` prints the decision as JSON for scripts."""
    await _seed(db)
    args = _parse(["route", "explain", "89161110001", "--json"])
    assert await args.handler(args, Settings(database_url=database_url)) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["kind"], body["target"], body["fallback_queue"]) == ("extension", "101", "retail")
