"""``crmtel report calls-vs-deals``: the report on the command line (table, CSV, XLSX or JSON)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crmtel.config import Settings
from crmtel.domain import Category
from crmtel.errors import CrmtelError, NotFound
from crmtel.i18n import LANGUAGES, Translator
from crmtel.reports import queue_commands, render
from crmtel.reports.models import PRESETS, ReportFilter, report_timezone
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository

FORMATS = ("table", "csv", "xlsx", "json")
_TEXT = {"table": render.to_table, "csv": render.to_csv}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report calls-vs-deals``."""
    report = subparsers.add_parser("report", help="reports for heads of sales")
    sub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    cvd = sub.add_parser(
        "calls-vs-deals",
        help="calls, talk time, missed calls, deals and lead conversion per manager",
        description="Per-manager figures for the period [FROM, TO) (or a preset) in the reports time zone, "
        "with totals and the previous period (the previous calendar month(s) for whole months).",
    )
    cvd.add_argument(
        "--from", dest="date_from", type=queue_commands.parse_date, metavar="YYYY-MM-DD", help="first day"
    )
    cvd.add_argument(
        "--to",
        dest="date_to",
        type=queue_commands.parse_date,
        metavar="YYYY-MM-DD",
        help="day after the last (exclusive)",
    )
    cvd.add_argument("--preset", choices=PRESETS, help="a named period instead of --from/--to")
    cvd.add_argument("--manager", metavar="LOGIN", help="only this manager")
    cvd.add_argument("--team", choices=[c.value for c in Category], help="only managers of this team")
    cvd.add_argument("--format", choices=FORMATS, default="table")
    cvd.add_argument("--output", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    cvd.add_argument("--timezone", help="time zone of the days (default: reports.timezone, routing.timezone)")
    cvd.add_argument(
        "--lang",
        choices=LANGUAGES,
        help="language of headings and row names (default: i18n.language, ru; env CRMTEL_I18N__LANGUAGE)",
    )
    cvd.set_defaults(handler=calls_vs_deals)
    queue_commands.register(sub)


async def calls_vs_deals(args: argparse.Namespace, settings: Settings) -> int:
    """Run the report and write it in the asked format."""
    if args.format == "xlsx" and args.output is None and sys.stdout.isatty():
        raise CrmtelError("XLSX is binary: use --output FILE or redirect standard output")
    period = queue_commands.period_of(args, args.timezone or report_timezone(settings))
    db = Database(settings.database_url)
    try:
        manager_id = None
        if args.manager:
            manager = await ManagerRepository(db).by_login(args.manager)
            if manager is None:
                raise NotFound(f"no manager with login {args.manager!r}")
            manager_id = manager.id
        queries = ReportQueries(db, QueryOptions.from_settings(settings.reports))
        report = await queries.calls_vs_deals(period, ReportFilter(manager_id=manager_id, team=args.team))
    finally:
        await db.dispose()
    tr = Translator.for_locale(args.lang or settings.i18n.language, zone=period.tz)
    if args.format == "xlsx":
        data = render.to_xlsx(report, tr)
        if args.output is None:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return 0
    else:
        text = render.to_json(report) if args.format == "json" else _TEXT[args.format](report, tr)
        if args.output is None:
            sys.stdout.write(text)
            return 0
        data = text.encode("utf-8")
    try:
        args.output.write_bytes(data)
    except OSError as err:
        raise CrmtelError(f"cannot write {args.output}: {err}") from err
    return 0
