"""Exchange subcommands: ``import`` and ``export`` of managers, clients and leads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crmtel.config import Settings
from crmtel.exchange.exporter import export_file
from crmtel.exchange.importer import ImportKind, ImportReport, import_file
from crmtel.exchange.progress import TerminalProgress
from crmtel.managers.models import MobilePolicy
from crmtel.managers.sync import after_mobile_change
from crmtel.store.db import Database
from crmtel.webphone.commands import after_manager_change

# More lines than this are summarised: a 100k-row file with a systematic mistake must not flood the terminal.
MAX_SHOWN = 200


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``import`` and ``export``."""
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
    bar = TerminalProgress(f"import {args.kind}", steps=2, stream=sys.stderr)
    try:
        report = await import_file(
            db,
            ImportKind(args.kind),
            args.file,
            region=settings.region,
            mobiles=MobilePolicy.of(settings),
            skip_bad_rows=args.skip_bad_rows,
            dry_run=args.dry_run,
            progress=bar,
        )
    finally:
        bar.close()
        await db.dispose()
    print_report(report)
    if args.kind == ImportKind.MANAGERS.value and not args.dry_run:
        # Passwords, deactivations and extensions an import changed end those managers' sessions and drop their
        # browser-phone credentials: the PBX must stop accepting the old ones now, as after `manager passwd`.
        sync_db = Database(settings.database_url)
        try:
            line = await after_manager_change(settings, sync_db)
            # Mobiles, extensions and activity an import changed are what follow-me rings.
            mobiles = await after_mobile_change(settings, sync_db)
        finally:
            await sync_db.dispose()
        for done in (line, mobiles):
            if done:
                print(done)
    return 1 if report.errors and not args.skip_bad_rows else 0


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    bar = TerminalProgress(f"export {args.kind}", steps=2, stream=sys.stderr)
    try:
        count = await export_file(db, ImportKind(args.kind), args.file, progress=bar)
    finally:
        bar.close()
        await db.dispose()
    print(f"exported {count} {args.kind} rows to {args.file}")
    return 0
