"""Manager subcommands: ``manager add|list|mobile|passwd|deactivate|activate``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from crmtel.config import Settings
from crmtel.domain import Category, Manager, Role
from crmtel.errors import CrmtelError
from crmtel.managers.models import BadMobile, MobilePolicy
from crmtel.managers.sync import after_mobile_change
from crmtel.phones import display, is_extension
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.webphone.commands import after_manager_change

T = TypeVar("T")


def _extension(text: str) -> str:
    value = text.strip()
    if not is_extension(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not an extension number (2 to 6 digits, e.g. 101)")
    return value


def _login(text: str) -> str:
    # As `crmtel import managers` has it: a login is one word. A newline in it went raw into the browser
    # phones' PJSIP include (its comment line and caller-id name) and could add sections to pjsip.conf.
    if not text or any(c.isspace() or not c.isprintable() for c in text) or len(text) > 100:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not a login (one word, no spaces, at most 100 characters)"
        )
    return text


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``manager add``, ``list``, ``passwd``, ``deactivate`` and ``activate``."""
    mgr = subparsers.add_parser("manager", help="managers and heads of sales")
    mgr_sub = mgr.add_subparsers(dest="manager_command", required=True, metavar="ACTION")
    add = mgr_sub.add_parser("add", help="create or update a manager (by login)")
    add.add_argument("--login", required=True, type=_login)
    add.add_argument("--name", required=True)
    add.add_argument(
        "--extension", action="append", default=[], type=_extension, help="repeat for several phones"
    )
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.MANAGER.value)
    add.add_argument("--speciality", choices=[c.value for c in Category])
    add.add_argument("--inactive", action="store_true")
    add.add_argument(
        "--mobile",
        help='the manager\'s mobile (any spelling: "8 916 111-00-01"); "" removes it; absent: kept',
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first stdin line"
    )
    add.set_defaults(handler=_manager_add)

    mobile = mgr_sub.add_parser(
        "mobile",
        help="set the manager's mobile (click-to-call via the mobile, follow-me); without NUMBER: remove it",
    )
    mobile.add_argument("login")
    mobile.add_argument("number", nargs="?", default="")
    mobile.set_defaults(handler=_manager_mobile)

    listing = mgr_sub.add_parser("list", help="every manager: login, name, role, extensions, mobile, active")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_manager_list)

    passwd = mgr_sub.add_parser(
        "passwd", help="set a manager's password (asked twice on a terminal, else the first stdin line)"
    )
    passwd.add_argument("login")
    passwd.set_defaults(handler=_manager_passwd)

    for name, active, text in (
        ("deactivate", False, "stop a manager from logging in (their open pages are refused at once)"),
        ("activate", True, "let a deactivated manager log in again"),
    ):
        cmd = mgr_sub.add_parser(name, help=text)
        cmd.add_argument("login")
        cmd.set_defaults(handler=_manager_active, active=active)


async def _with_repo(settings: Settings, work: Callable[[ManagerRepository], Awaitable[T]]) -> T:
    db = Database(settings.database_url)
    try:
        return await work(ManagerRepository(db))
    finally:
        await db.dispose()


async def _sync_phones(settings: Settings, done: str) -> None:
    """Bring the browser phones' endpoints on the PBX in line with the change just made (webphone on)."""
    db = Database(settings.database_url)
    try:
        line = await after_manager_change(settings, db)
    except CrmtelError as err:
        # The change stands, but the PBX may still accept the old credential: say so loudly.
        raise CrmtelError(
            f"{done}, but the browser phones on the PBX were not updated ({err}); "
            "run `crmtel config webphone-endpoints` once the PBX answers"
        ) from err
    finally:
        await db.dispose()
    if line:
        print(line)


async def _read_password(prompt_twice: bool) -> str:
    """From a terminal: asked twice without echo. Otherwise: the first line of standard input."""
    if prompt_twice and sys.stdin.isatty():
        first = await asyncio.to_thread(getpass.getpass, "new password: ")
        again = await asyncio.to_thread(getpass.getpass, "again: ")
        if first != again:
            raise CrmtelError("the two passwords differ; nothing changed")
        password = first
    else:
        password = (await asyncio.to_thread(sys.stdin.readline)).rstrip("\r\n")
    if not password:
        raise CrmtelError("no password given; nothing changed")
    return password


def _mobile(text: str, settings: Settings, extensions: tuple[str, ...]) -> str | None:
    try:
        return MobilePolicy.of(settings).parse(text, extensions)
    except BadMobile as err:
        raise CrmtelError(f"{err}; nothing changed") from err


async def _sync_mobiles(settings: Settings, done: str) -> None:
    """Rewrite follow-me's mobile globals after the change just made (``mobile.globals_file`` set)."""
    db = Database(settings.database_url)
    try:
        line = await after_mobile_change(settings, db)
    except CrmtelError as err:
        raise CrmtelError(f"{done}, but {err}") from err
    finally:
        await db.dispose()
    if line:
        print(line)


async def _manager_add(args: argparse.Namespace, settings: Settings) -> int:
    mobile = _mobile(args.mobile, settings, tuple(args.extension)) if args.mobile is not None else None
    password = await _read_password(prompt_twice=False) if args.password_stdin else None

    async def save(repo: ManagerRepository) -> Manager:
        manager = await repo.save(
            login=args.login,
            name=args.name,
            extensions=args.extension,
            role=Role(args.role),
            active=not args.inactive,
            speciality=Category(args.speciality) if args.speciality else None,
            password=password,
        )
        if args.mobile is None:
            return manager
        await repo.set_mobile(manager.id, mobile)
        return replace(manager, mobile=mobile)

    manager = await _with_repo(settings, save)
    exts = ", ".join(manager.extensions) or "no extension"
    extra = f", mobile {display(manager.mobile)}" if manager.mobile else ""
    print(f"manager {manager.login!r} (#{manager.id}, {manager.role.value}, {exts}{extra}) saved")
    await _sync_phones(settings, f"manager {manager.login!r} saved")
    await _sync_mobiles(settings, f"manager {manager.login!r} saved")
    return 0


async def _manager_mobile(args: argparse.Namespace, settings: Settings) -> int:
    async def store(repo: ManagerRepository) -> str | None:
        manager = await repo.by_login(args.login)
        if manager is None:
            raise CrmtelError(f"no manager with login {args.login!r}")
        # Checked against the policy of the PBXs ringing this manager's extensions.
        mobile = _mobile(args.number, settings, manager.extensions)
        await repo.set_mobile(manager.id, mobile)
        return mobile

    mobile = await _with_repo(settings, store)
    done = f"mobile of {args.login!r}: {display(mobile) if mobile else 'none'}"
    print(done)
    await _sync_mobiles(settings, done)
    return 0


def _row(m: Manager) -> dict[str, object]:
    return {
        "login": m.login,
        "name": m.name,
        "role": m.role.value,
        "extensions": list(m.extensions),
        "mobile": m.mobile,
        "speciality": m.speciality.value if m.speciality else None,
        "active": m.active,
    }


async def _manager_list(args: argparse.Namespace, settings: Settings) -> int:
    managers = await _with_repo(settings, lambda repo: repo.all())
    if args.format == "json":
        print(json.dumps([_row(m) for m in managers], ensure_ascii=False, indent=2))
        return 0
    rows = [("login", "name", "role", "extensions", "mobile", "active")]
    rows += [
        (
            m.login,
            m.name,
            m.role.value,
            ",".join(m.extensions) or "-",
            m.mobile or "-",
            "yes" if m.active else "no",
        )
        for m in managers
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


async def _manager_passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = await _read_password(prompt_twice=True)
    if not await _with_repo(settings, lambda repo: repo.set_password(args.login, password)):
        raise CrmtelError(f"no manager with login {args.login!r}")
    print(f"password of {args.login!r} changed")
    await _sync_phones(settings, f"password of {args.login!r} changed")
    return 0


async def _manager_active(args: argparse.Namespace, settings: Settings) -> int:
    if not await _with_repo(settings, lambda repo: repo.set_active(args.login, args.active)):
        raise CrmtelError(f"no manager with login {args.login!r}")
    done = f"manager {args.login!r} {'activated' if args.active else 'deactivated'}"
    print(done)
    await _sync_phones(settings, done)
    await _sync_mobiles(settings, done)
    return 0
