"""``crmtel backfill``: after an outage, bring a PBX's calls of a period in line with its CDR."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, tzinfo

from tqdm import tqdm

from crmtel.calls.setup import build_call_service
from crmtel.cdr.models import CdrSpec
from crmtel.cdr.service import Backfill, open_source
from crmtel.cdr.times import pbx_zone
from crmtel.config import AmiSettings, Settings
from crmtel.connectors.service import OutboxTap
from crmtel.connectors.sinks import build_sinks
from crmtel.errors import ConfigError
from crmtel.i18n import Translator
from crmtel.store.db import Database, upgrade


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backfill``."""
    cmd = subparsers.add_parser(
        "backfill",
        help="create or correct the calls of a period from the PBX's own CDR (after an outage)",
        description="Reads the PBX's CDR for calls that ended in [SINCE, UNTIL): creates the calls crmtel never "
        "saw (with their leads and callback tasks) and corrects the end, ring and talk time of calls it "
        "closed too late. Running it twice changes nothing the second time.",
    )
    cmd.add_argument("--pbx", required=True, metavar="NAME", help="the PBX (its name in the config)")
    cmd.add_argument(
        "--cdr", metavar="SOURCE", help="csv:PATH, mysql://… or postgresql://… (default: the config's)"
    )
    cmd.add_argument(
        "--since", required=True, metavar="TIME", help="ISO date/time; without offset: the PBX's zone"
    )
    cmd.add_argument("--until", metavar="TIME", help="ISO date/time (default: now)")
    cmd.add_argument("--dry-run", action="store_true", help="only count what would change")
    cmd.set_defaults(handler=backfill)


def parse_time(text: str, zone: tzinfo) -> datetime:
    """``2026-11-23``, ``2026-11-23 19:00``, ``2026-11-23T19:00:00+03:00``; a naive time is in ``zone``."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise ConfigError(f"not a date or time: {text!r} (use e.g. 2026-11-23 19:00)") from err
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _pbx(settings: Settings, name: str, t: Translator) -> AmiSettings:
    for pbx in (settings.ami, *settings.pbx):
        if pbx.name == name:
            return pbx
    names = ", ".join(p.name for p in (settings.ami, *settings.pbx))
    raise ConfigError(t.t("backfill.unknown_pbx", pbx=name, names=names))


class _Bar:
    """tqdm's bar on the terminal: its total grows as each slice of the period is read."""

    def __init__(self, label: str) -> None:
        self._bar = tqdm(total=0, unit=f" {label}", file=sys.stderr, leave=False)

    def found(self, calls: int) -> None:
        self._bar.total = (self._bar.total or 0) + calls
        self._bar.refresh()

    def done(self, calls: int) -> None:
        self._bar.update(calls)

    def close(self) -> None:
        self._bar.close()


async def backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Run one backfill and print what it created, corrected and left unchanged."""
    t = Translator.for_locale(settings.i18n.language)
    pbx = _pbx(settings, args.pbx, t)
    source_text = args.cdr or pbx.cdr
    if not source_text:
        raise ConfigError(t.t("backfill.no_source", pbx=pbx.name))
    zone = pbx_zone(pbx.cdr_timezone, pbx.cdr_usegmtime)
    since = parse_time(args.since, zone)
    until = parse_time(args.until, zone) if args.until else datetime.now(zone)
    source = open_source(CdrSpec.parse(source_text, pbx.cdr_table), zone)
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    # Calls the backfill creates go to the connectors' outbox as live ones do (the running crmtel delivers them;
    # a call the live path already staged is keyed the same and staged once).
    sinks = build_sinks(settings, db)
    try:
        calls = build_call_service(settings, db, (pbx,), tap=OutboxTap(sinks) if sinks else None)
        await calls.learn_extensions()
        # A progress bar only for a person at a terminal; logs and pipes get the summary alone.
        bar = _Bar(t.t("backfill.progress")) if sys.stderr.isatty() else None
        try:
            report = await Backfill(pbx.name, source, calls).window(
                since, until, dry_run=args.dry_run, progress=bar
            )
        finally:
            if bar is not None:
                bar.close()
    finally:
        for sink in sinks:
            await sink.aclose()
        await source.close()
        await db.dispose()
    print(
        t.t(
            "backfill.summary",
            pbx=pbx.name,
            created=report.created,
            corrected=report.corrected,
            unchanged=report.unchanged,
        )
    )
    if report.live:
        print(t.t("backfill.live", count=report.live))
    if source.skipped:
        print(t.t("backfill.skipped", count=source.skipped))
    if report.incomplete:
        print(t.t("backfill.incomplete"))
    if args.dry_run:
        print(t.t("backfill.dry_run"))
    return 0
