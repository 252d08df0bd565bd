"""``crmtel replay`` (a recorded AMI stream through the real pipeline) and ``crmtel calls list``."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Message
from crmtel.calls.record import public_json
from crmtel.calls.service import CallNotifier, CallService
from crmtel.calls.setup import build_call_service
from crmtel.config import AmiSettings, Settings
from crmtel.domain import CallRecord, call_id
from crmtel.errors import ConfigError
from crmtel.fakepbx.server import FakeAmiServer, Recorded, load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database, upgrade
from crmtel.store.managers import ManagerRepository

JSON_FIELDS = (
    "pbx",
    "linkedid",
    "direction",
    "caller_number",
    "caller_name",
    "dialled",
    "rang",
    "answered_by",
    "answered_on",
    "transferred_to",
    "queue",
    "outcome",
    "missed_reason",
    "started_at",
    "ring_seconds",
    "talk_seconds",
    "recording_file",
    "recording_url",
    "route_kind",
    "route_target",
    "route_reason",
    "party",
    "manager",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``replay`` and ``calls list``."""
    replay = subparsers.add_parser(
        "replay",
        help="play a recorded AMI stream (.ami) through a built-in fake AMI server into the database",
    )
    replay.add_argument("file", type=Path, metavar="FILE.ami")
    replay.add_argument(
        "--speed", type=float, default=0.0, help="1 = real time, 10 = ten times faster; 0 (default) = at once"
    )
    replay.add_argument("--chunk", type=int, default=64 * 1024, help="bytes per TCP write (default 65536)")
    replay.add_argument(
        "--pbx",
        metavar="NAME",
        help="the configured PBX the capture came from (its trunks, flavour, device prefixes); default: [ami]",
    )
    replay.set_defaults(handler=_replay)

    calls = subparsers.add_parser("calls", help="stored calls")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True, metavar="ACTION")
    listing = calls_sub.add_parser("list", help="print stored calls")
    listing.add_argument("--from", dest="start", type=_when, help="from this date/time (UTC), inclusive")
    listing.add_argument(
        "--to", dest="end", type=_when_end, help="to this date (inclusive) or time (exclusive)"
    )
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_calls_list)


def _when(text: str) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a date or ISO time: {text!r}") from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when_end(text: str) -> datetime:
    # A bare date means "to the end of that day".
    value = _when(text)
    return value + timedelta(days=1) if len(text) == 10 else value


def as_json(record: CallRecord, logins: Mapping[int, str] | None = None) -> dict[str, Any]:
    """A record in the documented JSON shape of ``calls list``; ``manager`` is the owner's login."""
    party = (
        {"kind": record.party_kind.value, "id": record.party_id, "name": record.party_name}
        if record.party_kind is not None
        else None
    )
    values: dict[str, Any] = {
        **public_json(record),
        # Without a template of its own, a recording is played through crmtel's authenticated API.
        "recording_url": record.recording_url
        or (
            f"/api/calls/{call_id(record.pbx, record.linkedid)}/recording" if record.recording_file else None
        ),
        "party": party,
        "manager": (logins or {}).get(record.manager_id) if record.manager_id is not None else None,
    }
    return {name: values[name] for name in JSON_FIELDS}


def render_table(records: Sequence[CallRecord], logins: Mapping[int, str] | None = None) -> str:
    """A plain-text table of records, one line each; ``manager`` is the owner's login."""
    logins = logins or {}
    head = (
        "started (UTC)",
        "dir",
        "caller",
        "name",
        "rang",
        "answered",
        "outcome",
        "ring",
        "talk",
        "party",
        "manager",
    )
    rows = [head]
    for r in records:
        outcome = r.outcome.value if r.outcome else "live"
        if r.missed_reason is not None:
            outcome += f" ({r.missed_reason.value})"
        rows.append(
            (
                r.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                r.direction.value[:3],
                r.caller_number or "hidden",
                (r.caller_name or "")[:24],
                ",".join(r.rang),
                r.answered_by or "-",
                outcome,
                f"{r.ring_seconds:.1f}",
                f"{r.talk_seconds:.1f}",
                f"{r.party_kind.value} {r.party_name}" if r.party_kind else "",
                logins.get(r.manager_id, "") if r.manager_id is not None else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


async def _calls_list(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        stored = await CallRepository(db).between(args.start, args.end)
        logins = {m.id: m.login for m in await ManagerRepository(db).all()}
    finally:
        await db.dispose()
    records = [s.record for s in stored]
    if args.format == "json":
        print(json.dumps([as_json(r, logins) for r in records], ensure_ascii=False, indent=2))
    else:
        print(render_table(records, logins))
    return 0


async def replay_stream(
    settings: Settings,
    db: Database,
    stream: Sequence[Recorded],
    *,
    speed: float = 0.0,
    chunk: int = 64 * 1024,
    notifier: CallNotifier | None = None,
    settle: float = 0.3,
    as_pbx: AmiSettings | None = None,
) -> CallService:
    """Serve ``stream`` from a fake AMI server to the real client and pipeline; return when all is stored.

    The pipeline is the one ``crmtel run`` builds (``build_call_service``) for ``as_pbx`` (default: ``[ami]``).
    """
    secret = secrets.token_hex(8)
    server = FakeAmiServer(stream, username="replay", secret=secret, speed=speed or None, chunk_size=chunk)
    await server.start()
    # The capture plays the part of the configured PBX it came from: same name, trunks, flavour, prefixes.
    pbx = (as_pbx or settings.ami).model_copy(
        update={"host": "127.0.0.1", "port": server.port, "username": "replay", "secret": SecretStr(secret)}
    )
    service = build_call_service(settings, db, (pbx,), notifier=notifier)
    await service.restore(pbx.name)
    client = AmiClient(pbx, service)
    try:
        async with asyncio.TaskGroup() as group:
            task = group.create_task(client.run(), name="replay-client")
            await server.finished.wait()
            async with asyncio.timeout(120):
                await _settled(client, settle)
            task.cancel()
        await service.flush()
    finally:
        await server.close()
    return service


async def _settled(client: AmiClient, quiet: float) -> None:
    """Wait until the client has handled everything and nothing new arrived for ``quiet`` seconds."""
    last = -1
    while True:
        if client.idle and client.connected.is_set() and client.received == last:
            return
        last = client.received if client.idle else -1
        await asyncio.sleep(quiet)


def _configured_pbx(settings: Settings, name: str | None) -> AmiSettings:
    """The configured PBX a capture came from: ``--pbx NAME``, else ``[ami]``."""
    if name is None:
        return settings.ami
    for pbx in (settings.ami, *settings.pbx):
        if pbx.name == name:
            return pbx
    known = ", ".join(p.name for p in (settings.ami, *settings.pbx))
    raise ConfigError(f"no PBX named {name!r} in the config (known: {known})")


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    if not await asyncio.to_thread(path.is_file):
        raise ConfigError(f"no such file: {path}")
    if args.speed < 0 or args.chunk < 1:
        raise ConfigError("--speed must be >= 0 and --chunk >= 1")
    stream = await asyncio.to_thread(load_ami, path)
    linkedids = {
        Message(item.headers).get("Linkedid")
        for item in stream
        if Message(item.headers).event == "Newchannel"
    }
    pbx = _configured_pbx(settings, args.pbx)
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        await replay_stream(settings, db, stream, speed=args.speed, chunk=args.chunk, as_pbx=pbx)
        stored = [s.record for s in await CallRepository(db).between() if s.record.linkedid in linkedids]
        logins = {m.id: m.login for m in await ManagerRepository(db).all()}
    finally:
        await db.dispose()
    print(f"replayed {len(stream)} messages from {path.name}: {len(stored)} call(s)")
    if stored:
        print(render_table(stored, logins))
    return 0
