"""Record-store subcommands: ``import``, ``export`` and ``manager add``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from crmtel.config import Settings
from crmtel.domain import Category, Role
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.store.exporter import export_file
from crmtel.store.importer import ImportKind, ImportReport, import_file
from crmtel.store.managers import ManagerRepository

# More lines than this are summarised: a 100k-row file with a systematic mistake must not flood the terminal.
MAX_SHOWN = 200


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``import``, ``export`` and ``manager add``."""
    kinds = [k.value for k in ImportKind]
    imp = subparsers.add_parser(
        "import",
        help="import managers, clients or leads from CSV/XLSX",
        description="Rows are checked first; a file with bad rows imports nothing unless --skip-bad-rows.",
    )
    imp.add_argument("kind", choices=kinds)
    imp.add_argument("file", type=Path, help=".csv (UTF-8, ';' or ',') or .xlsx")
    imp.add_argument("--skip-bad-rows", action="store_true", help="import the good rows, report the bad ones")
    imp.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    imp.set_defaults(handler=_import)

    exp = subparsers.add_parser("export", help="export managers, clients or leads to CSV/XLSX")
    exp.add_argument("kind", choices=kinds)
    exp.add_argument("file", type=Path, help="the format follows the extension: .csv or .xlsx")
    exp.set_defaults(handler=_export)

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


def print_report(report: ImportReport) -> None:
    """Errors and warnings (line by line, capped), then the summary."""
    for title, issues in (("error", report.errors), ("warning", report.warnings)):
        for issue in issues[:MAX_SHOWN]:
            print(f"{title}: {issue}", file=sys.stderr)
        if len(issues) > MAX_SHOWN:
            print(f"{title}: … and {len(issues) - MAX_SHOWN} more", file=sys.stderr)
    print(report.summary())
    if report.errors and not report.applied and not report.dry_run:
        print("nothing was imported: fix the rows above or pass --skip-bad-rows", file=sys.stderr)


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        report = await import_file(
            db,
            ImportKind(args.kind),
            args.file,
            region=settings.region,
            skip_bad_rows=args.skip_bad_rows,
            dry_run=args.dry_run,
        )
    finally:
        await db.dispose()
    print_report(report)
    return 1 if report.errors and not args.skip_bad_rows else 0


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        count = await export_file(db, ImportKind(args.kind), args.file)
    finally:
        await db.dispose()
    print(f"exported {count} {args.kind} rows to {args.file}")
    return 0


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
