"""``crmtel call --from EXT --to NUMBER [--pbx NAME]``: click-to-call for admins and scripts.

It opens its own AMI session (the running daemon's is not shared), sends the same ``Originate`` the page
sends, waits until the PBX says how it went, prints that, and exits 0 only when the phone was picked up
and the number is being dialled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from crmtel.ami.client import AmiClient
from crmtel.ami.protocol import Message
from crmtel.config import Settings
from crmtel.dial.guard import GuardedSender
from crmtel.dial.models import DialRefused, DialStatus
from crmtel.dial.service import DialService
from crmtel.i18n import Translator
from crmtel.phones import display
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from crmtel.store.dial_attempts import DialAttempts


class _Discard:
    """The CLI's AMI session only places the call: the daemon follows it."""

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        """Ignore the event."""

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        """Ignore the listing."""

    async def on_idle(self, pbx: str) -> None:
        """Nothing to write."""

    async def on_lost(self, pbx: str, at: datetime) -> None:
        """Nothing to follow."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``call``."""
    call = subparsers.add_parser(
        "call",
        help="ring a phone, then dial a number from it (AMI Originate)",
        description="Rings extension EXT; when it is picked up the PBX dials NUMBER (dial rules of the PBX's "
        "[originate] section apply). Exit code 0 when the phone answered, 1 otherwise.",
    )
    call.add_argument("--from", dest="extension", required=True, metavar="EXT", help="the extension to ring")
    call.add_argument("--to", dest="number", required=True, metavar="NUMBER", help="the number to dial")
    call.add_argument(
        "--pbx", metavar="NAME", help="the PBX the extension is on (default: found from config)"
    )
    call.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to wait for the AMI login")
    call.set_defaults(handler=run_call)
    attempts = subparsers.add_parser(
        "dial-log",
        help="the click-to-call audit log: who called what, placed or refused, and how it went",
    )
    attempts.add_argument("--hours", type=float, default=24.0, help="how far back (default 24)")
    attempts.add_argument("--manager", metavar="LOGIN", help="one manager's attempts only")
    attempts.add_argument("--limit", type=int, default=1000, help="at most this many lines (newest first)")
    attempts.set_defaults(handler=run_dial_log)


async def run_call(args: argparse.Namespace, settings: Settings) -> int:
    """Place the call and report it."""
    tr = Translator.for_locale(settings.i18n.language)
    clients = {p.name: AmiClient(p, _Discard()) for p in settings.pbxes}
    db = Database(settings.database_url)
    try:
        audit = DialAttempts(db)
        service = DialService(
            # The same checks as the daemon's: the PBX's number patterns and window of attempts, and the same
            # audit log for what the guard refuses (a trunk or an extension the PBX does not serve as --from).
            {
                name: GuardedSender(name, c, c.settings.originate, trunks=c.settings.trunks, audit=audit)
                for name, c in clients.items()
            },
            {p.name: p.originate for p in settings.pbxes},
            region=settings.region,
            locator=CallRepository(db),
            # Audited like the page's clicks, and counted in the PBX's window with every node's.
            audit=audit,
            source="cli",
        )
        try:
            request = await service.prepare(args.number, manager=None, extension=args.extension, pbx=args.pbx)
        except DialRefused as err:
            print(f"refused: {tr.t(err.key, **err.params)}")
            return 1
        client = clients[request.pbx]
        runner = asyncio.create_task(client.run(), name=f"call-ami-{request.pbx}")
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.connect_timeout):
                    await client.connected.wait()
            if not client.connected.is_set():
                print(f"unreachable: cannot log in to the AMI of PBX {request.pbx}")
                return 1
            print(
                f"calling {request.extension} on {request.pbx}, then {request.exten} ({request.originate_id})"
            )
            try:
                result = await service.call(request)
            except DialRefused as err:
                print(f"refused: {tr.t(err.key, **err.params)}")
                return 1
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    finally:
        await db.dispose()
    params = {
        "number": display(request.number),
        "extension": request.extension,
        "detail": result.detail or "",
    }
    print(f"{result.status.value}: {tr.t(result.status.message_key, **params)}")
    return 0 if result.status is DialStatus.ANSWERED else 1


async def run_dial_log(args: argparse.Namespace, settings: Settings) -> int:
    """Print the audit log, newest first: time, PBX, source, who, from, number, decision or how it went."""
    db = Database(settings.database_url)
    try:
        since = datetime.now(UTC) - timedelta(hours=max(0.0, args.hours))
        found = await DialAttempts(db).between(since, login=args.manager, limit=max(1, args.limit))
    finally:
        await db.dispose()
    for a in found:
        outcome = a.reason if a.decision == "refused" else (a.status or "calling")
        who = a.manager_login or "-"
        print(
            f"{a.at.astimezone(UTC).isoformat(timespec='seconds')} {a.pbx} {a.source} {who} "
            f"{a.extension} {a.number} {a.decision} {outcome}" + (f" ({a.detail})" if a.detail else "")
        )
    return 0
