"""``crmtel token``: create, list and revoke the API tokens integrations use instead of a browser session."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta

from crmtel.apitokens.models import SCOPE_HELP, ApiToken, Scope, parse_scopes
from crmtel.apitokens.service import ApiTokens, utcnow
from crmtel.config import Settings
from crmtel.errors import CrmtelError
from crmtel.store.api_tokens import ApiTokenRepository
from crmtel.store.db import Database, upgrade
from crmtel.store.managers import ManagerRepository

_SPAN = re.compile(r"^(\d{1,5})([dh])$")


def _expiry(text: str) -> datetime:
    """``90d``/``12h`` from now, or an ISO date (midnight UTC) or date and time (UTC if no offset)."""
    value = text.strip()
    span = _SPAN.match(value)
    if span:
        amount = int(span.group(1))
        if amount == 0:
            raise argparse.ArgumentTypeError("a token must live longer than that")
        unit = timedelta(days=1) if span.group(2) == "d" else timedelta(hours=1)
        return utcnow() + amount * unit
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a span (90d, 12h) or an ISO date/time (2027-01-31, 2027-01-31T18:00+03:00)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``token create``, ``token list`` and ``token revoke``."""
    scopes = "; ".join(f"{s.value}: {SCOPE_HELP[s]}" for s in Scope)
    cmd = subparsers.add_parser("token", help="API tokens for integrations (Authorization: Bearer)")
    sub = cmd.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = sub.add_parser(
        "create",
        help="make a token acting as a manager within its scopes (printed once, stored only as a hash)",
        description=f"Scopes — {scopes}.",
    )
    create.add_argument("--manager", required=True, metavar="LOGIN", help="the manager the token acts as")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        dest="scopes",
        metavar="SCOPE",
        help=f"repeatable or comma-separated: {', '.join(s.value for s in Scope)}",
    )
    create.add_argument("--name", default="", help="what the token is for (shown in `crmtel token list`)")
    create.add_argument("--expires", type=_expiry, metavar="WHEN", help="90d, 12h or an ISO date/time")
    create.set_defaults(handler=_create)
    listing = sub.add_parser(
        "list", help="every token: id, manager, name, scopes, expiry, last use (no secrets)"
    )
    listing.add_argument("--manager", metavar="LOGIN", help="only this manager's")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)
    revoke = sub.add_parser("revoke", help="revoke a token (refused at once on every node)")
    revoke.add_argument("id", type=int, help="the token's id (from `crmtel token list`)")
    revoke.set_defaults(handler=_revoke)


async def _database(settings: Settings) -> Database:
    await upgrade(settings.database_url)
    return Database(settings.database_url)


async def _create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        scopes = parse_scopes(args.scopes)
    except ValueError as err:
        raise CrmtelError(str(err)) from None
    if args.expires is not None and args.expires <= utcnow():
        raise CrmtelError("the expiry is in the past")
    db = await _database(settings)
    try:
        manager = await ManagerRepository(db).by_login(args.manager)
        if manager is None:
            raise CrmtelError(f"no manager with login {args.manager!r}")
        if not manager.active:
            raise CrmtelError(f"manager {args.manager!r} is deactivated")
        issued = await ApiTokens(ApiTokenRepository(db)).issue(
            manager.id, args.name.strip()[:200], scopes, args.expires
        )
    finally:
        await db.dispose()
    # The secret alone on stdout (for scripts); what it is on stderr. It is never shown again.
    print(issued.secret)
    print(
        f"token #{issued.token.id} for {manager.login!r} ({' '.join(sorted(scopes))}), "
        f"expires {_when(issued.token.expires_at, 'never')}: keep it now, it cannot be shown again",
        file=sys.stderr,
    )
    return 0


def _when(value: datetime | None, empty: str) -> str:
    return value.isoformat(timespec="seconds") if value is not None else empty


def _state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def _json(token: ApiToken, now: datetime) -> dict[str, object]:
    return {
        "id": token.id,
        "hint": token.hint,
        "manager": token.manager_login,
        "name": token.name,
        "scopes": sorted(token.scopes),
        "state": _state(token, now),
        "created_at": _when(token.created_at, ""),
        "expires_at": token.expires_at and _when(token.expires_at, ""),
        "last_used_at": token.last_used_at and _when(token.last_used_at, ""),
        "revoked_at": token.revoked_at and _when(token.revoked_at, ""),
    }


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    db = await _database(settings)
    try:
        manager_id = None
        if args.manager:
            manager = await ManagerRepository(db).by_login(args.manager)
            if manager is None:
                raise CrmtelError(f"no manager with login {args.manager!r}")
            manager_id = manager.id
        tokens = await ApiTokenRepository(db).list(manager_id)
    finally:
        await db.dispose()
    now = utcnow()
    if args.format == "json":
        print(json.dumps([_json(t, now) for t in tokens], ensure_ascii=False, indent=2))
        return 0
    if not tokens:
        print("no API tokens")
        return 0
    for t in tokens:
        print(
            f"{t.id}\t{t.hint}…\t{t.manager_login}\t{t.name or '-'}\t{','.join(sorted(t.scopes))}\t"
            f"{_state(t, now)}\texpires={_when(t.expires_at, 'never')}\tlast_used={_when(t.last_used_at, 'never')}"
        )
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    db = await _database(settings)
    try:
        done = await ApiTokenRepository(db).revoke(args.id, utcnow())
    finally:
        await db.dispose()
    if not done:
        raise CrmtelError(f"no active token #{args.id} (see `crmtel token list`)")
    print(f"token #{args.id} revoked")
    return 0
