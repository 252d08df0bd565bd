"""``crmtel report queues``: the queue report on the command line (table, CSV, XLSX or JSON)."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path

from crmtel.config import Settings
from crmtel.errors import CrmtelError
from crmtel.i18n import LANGUAGES, Translator
from crmtel.reports import queue_render
from crmtel.reports.models import PRESETS, Period, preset_period, report_timezone, zone
from crmtel.reports.queue_queries import QueueQueries
from crmtel.store.db import Database

FORMATS = ("table", "csv", "xlsx", "json")


def parse_date(text: str) -> date:
    """An ISO date from the command line (argparse reports a bad one)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-01, got {text!r}") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report queues`` to the ``report`` sub-commands."""
    p = sub.add_parser(
        "queues",
        help="queue service level: offered, answered, abandoned, waits, talk, per member",
        description="Per-queue and per-member figures for the period [FROM, TO) (or a preset) in the reports "
        "time zone; the README defines every figure.",
    )
    p.add_argument("--from", dest="date_from", type=parse_date, metavar="YYYY-MM-DD", help="first day")
    p.add_argument(
        "--to", dest="date_to", type=parse_date, metavar="YYYY-MM-DD", help="day after the last (exclusive)"
    )
    p.add_argument("--preset", choices=PRESETS, help="a named period instead of --from/--to")
    p.add_argument("--queue", metavar="NAME", help="only this queue")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--timezone", help="time zone of the days (default: reports.timezone, routing.timezone)")
    p.add_argument("--lang", choices=LANGUAGES, help="language of headings (default: i18n.language, ru)")
    p.set_defaults(handler=queues)


def period_of(args: argparse.Namespace, tz: str) -> Period:
    """The period of ``--preset`` or ``--from``/``--to`` (exactly one of the two ways)."""
    if args.preset is not None:
        if args.date_from is not None or args.date_to is not None:
            raise CrmtelError("use either --preset or --from/--to")
        return preset_period(args.preset, datetime.now(zone(tz)).date(), tz)
    if args.date_from is None or args.date_to is None:
        raise CrmtelError("--from and --to are required (or --preset)")
    if args.date_to <= args.date_from:
        raise CrmtelError("--to must be after --from (the period is [from, to))")
    return Period(args.date_from, args.date_to, tz)


async def queues(args: argparse.Namespace, settings: Settings) -> int:
    """Run the queue report and write it in the asked format."""
    if args.format == "xlsx" and args.output is None and sys.stdout.isatty():
        raise CrmtelError("XLSX is binary: use --output FILE or redirect standard output")
    period = period_of(args, args.timezone or report_timezone(settings))
    tr = Translator.for_locale(args.lang or settings.i18n.language, zone=period.tz)
    db = Database(settings.database_url)
    try:
        queries = QueueQueries(db, service_level_seconds=settings.reports.service_level_seconds)
        report = await queries.queues(period, (args.queue or "")[:64] or None)
    finally:
        await db.dispose()
    if args.format == "xlsx":
        data = queue_render.to_xlsx(report, tr)
    else:
        if args.format == "json":
            text = queue_render.to_json(report)
        elif args.format == "csv":
            text = queue_render.to_csv(report, tr)
        else:
            text = queue_render.to_table(report, tr)
        if args.output is None:
            sys.stdout.write(text)
            return 0
        data = text.encode("utf-8")
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    try:
        args.output.write_bytes(data)
    except OSError as err:
        raise CrmtelError(f"cannot write {args.output}: {err}") from err
    return 0
