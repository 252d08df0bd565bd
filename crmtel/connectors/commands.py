"""``crmtel outbox``: list the deliveries the outbox gave up, read an event's delivery log, replay them."""

from __future__ import annotations

import argparse

from crmtel.config import Settings
from crmtel.connectors.service import utcnow
from crmtel.store.db import Database, upgrade
from crmtel.store.outbox import OutboxRepository


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox failed``, ``outbox log`` and ``outbox replay``."""
    cmd = subparsers.add_parser(
        "outbox", help="deliveries to outside CRMs and webhooks (failed ones, replay)"
    )
    sub = cmd.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    failed = sub.add_parser("failed", help="list the events given up (refused or too old), oldest first")
    failed.add_argument("--connector", metavar="NAME", help="only this connector (bitrix24, webhook1, …)")
    failed.add_argument("--limit", type=int, default=100)
    failed.set_defaults(handler=_failed)
    log = sub.add_parser("log", help="every delivery attempt of one event, with the outside system's answer")
    log.add_argument("id", type=int, help="the event's id (from `crmtel outbox failed`)")
    log.set_defaults(handler=_log)
    replay = sub.add_parser("replay", help="deliver failed events again (the running crmtel picks them up)")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id", type=int, action="append", dest="ids", metavar="ID", help="this event (repeatable)"
    )
    which.add_argument("--all", action="store_true", help="every failed event")
    replay.add_argument("--connector", metavar="NAME", help="only this connector's")
    replay.set_defaults(handler=_replay)


async def _with_repo(settings: Settings) -> tuple[Database, OutboxRepository]:
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    return db, OutboxRepository(db)


async def _failed(args: argparse.Namespace, settings: Settings) -> int:
    db, repo = await _with_repo(settings)
    try:
        events = await repo.failed(args.connector, args.limit)
    finally:
        await db.dispose()
    if not events:
        print("no failed deliveries")
        return 0
    for e in events:
        print(
            f"{e.id}\t{e.connector}\t{e.kind}\t{e.pbx}:{e.linkedid}\t{e.created_at.isoformat()}\t"
            f"attempts={e.attempts}\t{(e.last_error or '').splitlines()[0] if e.last_error else ''}"
        )
    return 0


async def _log(args: argparse.Namespace, settings: Settings) -> int:
    db, repo = await _with_repo(settings)
    try:
        rows = await repo.log(args.id)
    finally:
        await db.dispose()
    if not rows:
        print(f"no delivery attempts for event {args.id}")
        return 1
    for at, attempt, outcome, status, answer in rows:
        print(f"{at.isoformat()}\t#{attempt}\t{outcome}\t{status if status is not None else '-'}\t{answer}")
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    db, repo = await _with_repo(settings)
    try:
        count = await repo.replay(None if args.all else args.ids, utcnow(), args.connector)
    finally:
        await db.dispose()
    print(f"{count} event(s) queued for delivery again")
    return 0
