"""Manager subcommands: ``manager add`` (create or update by login)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from crmtel.config import Settings
from crmtel.domain import Category, Role
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``manager add``."""
    mgr = subparsers.add_parser("manager", help="managers and heads of sales")
    mgr_sub = mgr.add_subparsers(dest="manager_command", required=True, metavar="ACTION")
    add = mgr_sub.add_parser("add", help="create or update a manager (by login)")
    add.add_argument("--login", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--extension", action="append", default=[], help="repeat for several phones")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.MANAGER.value)
    add.add_argument("--speciality", choices=[c.value for c in Category])
    add.add_argument("--inactive", action="store_true")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first stdin line"
    )
    add.set_defaults(handler=_manager_add)


async def _manager_add(args: argparse.Namespace, settings: Settings) -> int:
    password: str | None = None
    if args.password_stdin:
        password = (await asyncio.to_thread(sys.stdin.readline)).rstrip("\r\n")
        if not password:
            raise CrmtelError("--password-stdin: no password on standard input")
    db = Database(settings.database_url)
    try:
        manager = await ManagerRepository(db).save(
            login=args.login,
            name=args.name,
            extensions=args.extension,
            role=Role(args.role),
            active=not args.inactive,
            speciality=Category(args.speciality) if args.speciality else None,
            password=password,
        )
    finally:
        await db.dispose()
    exts = ", ".join(manager.extensions) or "no extension"
    print(f"manager {manager.login!r} (#{manager.id}, {manager.role.value}, {exts}) saved")
    return 0
