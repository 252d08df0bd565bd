"""``crmtel route explain NUMBER [--did D]`` and ``crmtel route serve`` (the FastAGI server alone)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from crmtel.config import Settings
from crmtel.phones import normalize
from crmtel.routing.agi import AgiServer
from crmtel.routing.models import Decision
from crmtel.routing.service import RoutingService
from crmtel.store.db import Database
from crmtel.store.dial_attempts import DialAttempts
from crmtel.store.parties import PartyRepository
from crmtel.webphone.web import webphone_dial_check


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``route explain`` and ``route serve``."""
    route = subparsers.add_parser("route", help="inbound call routing")
    sub = route.add_subparsers(dest="route_command", required=True, metavar="ACTION")
    explain = sub.add_parser(
        "explain", help="print the routing decision for a number and every rule considered"
    )
    explain.add_argument("number", help="the caller's number, in any format")
    explain.add_argument("--did", default=None, help="the dialled number (per-DID rules)")
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")
    explain.set_defaults(handler=_explain)
    serve = sub.add_parser("serve", help="run only the FastAGI route server (routing.agi_host:agi_port)")
    serve.set_defaults(handler=_serve)


def format_explanation(number: str, did: str | None, region: str, decision: Decision) -> str:
    """The human-readable ``route explain`` report."""
    phone = normalize(number, region)
    lines = [
        f"caller:   {number} -> {phone.value or '-'} ({phone.kind.value})",
        f"dialled:  {did or '-'}",
        f"route:    {decision.kind.value} {decision.target}",
        f"fallback: queue {decision.fallback_queue}",
        f"name:     {decision.caller_name or '-'}",
        f"reason:   {decision.reason}",
        "rules considered (in order, * = decided):",
    ]
    lines += [f"  {'*' if r.applied else ' '} {r.rule}: {r.detail}" for r in decision.rules]
    return "\n".join(lines)


async def _explain(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        service = RoutingService(
            PartyRepository(db, settings.region), settings.routing, region=settings.region
        )
        decision = await service.explain(args.number, args.did)
    finally:
        await db.dispose()
    if args.json:
        print(json.dumps(decision.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_explanation(args.number, args.did, settings.region, decision))
    return 0


async def _serve(_args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    db = Database(settings.database_url)
    try:
        service = RoutingService(
            PartyRepository(db, settings.region), settings.routing, region=settings.region
        )
        try:
            # The browser phone's outside calls are asked here too ([crmtel-webphone]): without the check every
            # one of them was refused while this server alone answered FastAGI.
            check = webphone_dial_check(settings, audit=DialAttempts(db))
            async with AgiServer(
                service, settings.routing.agi_host, settings.routing.agi_port, webphone_check=check
            ):
                await stop.wait()
        finally:
            await service.close()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await db.dispose()
    return 0
