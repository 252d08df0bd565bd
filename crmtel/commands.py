"""Core subcommands: run the daemon, run the demo, database migrations and configuration checks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmtel.config import Settings, origins_of
from crmtel.configcheck.checks import check_settings
from crmtel.configcheck.messages import Problem, Redactor
from crmtel.configcheck.probes import port_problems
from crmtel.configcheck.report import all_problems
from crmtel.demo import DEMO_LOGINS, DEMO_PASSWORD
from crmtel.errors import CrmtelError
from crmtel.managers.models import mobile_globals
from crmtel.managers.sync import sync_mobile_globals
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.webphone.commands import add_config_command as add_webphone_command

if TYPE_CHECKING:
    from crmtel.app import Running

# crmtel.app (the whole daemon: web, AMI, every feature) is imported by the commands that run it, not by every
# command: `crmtel import`, `call` or `manager` start in a third of the time.


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run``, ``demo``, ``db upgrade``, ``config show`` and ``config check``."""
    run = subparsers.add_parser("run", help="run crmtel: AMI tracking, FastAGI routing, the web app")
    run.set_defaults(handler=_run)
    demo = subparsers.add_parser(
        "demo", help="run crmtel on SQLite with the built-in AMI simulator and demo data (no PBX needed)"
    )
    demo.add_argument("--port", type=int, help="web port (default: web.port, 8080)")
    demo.add_argument("--agi-port", type=int, help="FastAGI port (default: routing.agi_port, 4573)")
    demo.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="run the simulated PBX this many times faster (its clock stays real: calls last that many times less); default 1",
    )
    demo.add_argument(
        "--recordings",
        type=Path,
        default=Path("crmtel-recordings"),
        help="folder for the demo's recording files (default: ./crmtel-recordings)",
    )
    demo.set_defaults(handler=_demo)

    db = subparsers.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="create or migrate the schema to the latest version")
    up.add_argument("--revision", default="head")
    up.set_defaults(handler=_db_upgrade)

    cfg = subparsers.add_parser("config", help="configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = cfg_sub.add_parser("show", help="print the effective configuration (secrets hidden)")
    show.set_defaults(handler=_config_show)
    check = cfg_sub.add_parser(
        "check",
        help="check the configuration as `run` would: one line per problem, exit 0 (fine) or 1",
        description="Checks values, time zones, weekdays, URLs and whether the web and FastAGI ports are free; "
        "--connect also opens the database and logs in to every PBX.",
    )
    # SUPPRESS: `crmtel --config F config check` and `crmtel config check --config F` both work.
    check.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config file")
    check.add_argument("--connect", action="store_true", help="also open the database and log in to each AMI")
    check.set_defaults(handler=_config_check)
    globals_ = cfg_sub.add_parser(
        "dialplan-globals",
        help="print the dialplan globals (AGI address, ring time, default queue) that match this config",
        description="Lines for the [globals] section of extensions.conf "
        "(deploy/asterisk/extensions_crmtel_globals.conf).",
    )
    globals_.add_argument(
        "--mobiles",
        action="store_true",
        help="also CRMTEL_MOBILE_<extension> for every active manager with a mobile (reads the database)",
    )
    globals_.add_argument("--pbx", help="whose dial rules write the mobiles (default: the first PBX)")
    globals_.set_defaults(handler=_dialplan_globals)
    mobiles = cfg_sub.add_parser(
        "mobile-globals",
        help="write (or print) follow-me's CRMTEL_MOBILE_<extension> globals and reload the dialplan",
        description="Writes mobile.globals_file (or --output; '-' prints): one CRMTEL_MOBILE_<ext> per extension "
        "of an active manager with a mobile the click-to-call policy allows, the others empty; reloads the "
        "dialplan over AMI when mobile.reload is on. Rewritten by crmtel after every change of a mobile.",
    )
    mobiles.add_argument("--output", type=Path, help="file to write instead of mobile.globals_file; - prints")
    mobiles.add_argument("--no-reload", action="store_true", help="do not reload the dialplan afterwards")
    mobiles.set_defaults(handler=_mobile_globals)
    add_webphone_command(cfg_sub)


async def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from crmtel.app import migrate

    await migrate(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def _origins(args: argparse.Namespace) -> Any:
    return origins_of(args.config, getattr(args, "overrides", None))


def _report(problems: list[Problem]) -> None:
    for problem in problems:
        print(f"crmtel: {problem}", file=sys.stderr)


def _masked(value: Any, redact: Redactor) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, redact) for v in value]
    return redact(value) if isinstance(value, str) else value


async def _config_show(args: argparse.Namespace, settings: Settings) -> int:
    # Secrets are SecretStr (shown as ********); passwords inside URLs and anywhere else are masked too.
    shown = _masked(settings.model_dump(mode="json"), Redactor.for_settings(settings))
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    problems = check_settings(settings, _origins(args))
    _report(problems)
    return 1 if problems else 0


async def _config_check(args: argparse.Namespace, settings: Settings) -> int:
    problems = await all_problems(settings, _origins(args), connect=args.connect)
    _report(problems)
    if problems:
        return 1
    print("configuration OK" + (": database and every PBX answered" if args.connect else ""))
    return 0


async def mobile_globals_of(settings: Settings, pbx: str | None) -> list[str]:
    """``CRMTEL_MOBILE_<ext>=<dial string>`` lines for the managers in the database (see ``mobile_globals``)."""
    pbxes = {p.name: p for p in (settings.ami, *settings.pbx)}
    chosen = pbxes.get(pbx or settings.ami.name)
    if chosen is None:
        raise CrmtelError(f"no PBX named {pbx!r} (known: {', '.join(pbxes)})")
    db = Database(settings.database_url)
    try:
        managers = await ManagerRepository(db).all()
    finally:
        await db.dispose()
    lines, refused = mobile_globals(managers, chosen.originate)
    for manager, why in refused:
        # Left out, never dialled: follow-me would forward every unanswered call to it.
        print(
            f"crmtel: follow-me skips {manager.login}'s mobile {manager.mobile}: PBX {chosen.name}'s click-to-call"
            f" policy refuses it ({why}; [ami.originate] allow/deny)",
            file=sys.stderr,
        )
    return lines


def dialplan_globals(settings: Settings) -> list[str]:
    """``NAME=value`` lines for Asterisk's [globals], so the dialplan asks and rings as this config says."""
    routing = settings.routing
    # A wildcard listen address is reached on the loopback from the PBX next door.
    host = "127.0.0.1" if routing.agi_host in ("", "0.0.0.0", "::") else routing.agi_host
    return [
        f"CRMTEL_AGI_HOST={host}",
        f"CRMTEL_AGI_PORT={routing.agi_port}",
        f"CRMTEL_WEB_PORT={settings.web.port}",
        f"CRMTEL_RING={routing.ring_seconds}",
        f"CRMTEL_DEFAULT_QUEUE={routing.default_queue}",
        f"CRMTEL_FOLLOWME={1 if settings.mobile.followme else 0}",
        f"CRMTEL_MOBILE_RING={settings.mobile.ring_seconds}",
        f"CRMTEL_MOBILE_CONFIRM={settings.mobile.confirm_seconds}",
        f"CRMTEL_MOBILE_LANGUAGE={settings.mobile.language}",
        f"CRMTEL_MOBILE_SOUNDS={settings.mobile.sounds}",
    ]


async def _dialplan_globals(args: argparse.Namespace, settings: Settings) -> int:
    lines = dialplan_globals(settings)
    if args.mobiles:
        lines += await mobile_globals_of(settings, args.pbx)
    print("\n".join(lines))
    return 0


async def _mobile_globals(args: argparse.Namespace, settings: Settings) -> int:
    output: Path | None = args.output
    to_stdout = output is not None and str(output) == "-"
    if output is not None or settings.mobile.globals_file is None:
        target = None if to_stdout or output is None else output
        to_stdout = target is None
        settings = settings.model_copy(
            update={"mobile": settings.mobile.model_copy(update={"globals_file": target})}
        )
    db = Database(settings.database_url)
    try:
        result = await sync_mobile_globals(settings, db, reload=False if args.no_reload else None)
    finally:
        await db.dispose()
    if to_stdout:
        sys.stdout.write(result.text)
    else:
        print(
            f"{result.mobiles} follow-me mobile(s) written to {result.written}"
            + ("; dialplan reloaded" if result.reloaded else ""),
            file=sys.stderr,
        )
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    # The same messages as `config check` (its --connect part is what run itself then does, with retries).
    origins = _origins(args)
    problems = check_settings(settings, origins) + port_problems(settings, origins)
    if problems:
        _report(problems)
        return 1
    from crmtel.app import EXIT_UNWRITTEN, run_until_stopped
    from crmtel.memory import collect_less_often

    # The daemon's process, not crmtel.app: tests that start crmtel in their own process keep CPython's default.
    collect_less_often()
    return 0 if await run_until_stopped(settings) else EXIT_UNWRITTEN


def _banner(running: Running) -> None:
    print(f"crmtel demo is running: open {running.web_url}", flush=True)
    logins = ", ".join(f"{d.login} ({d.extension or d.role.value})" for d in DEMO_LOGINS)
    print(f"log in as one of {logins}; password: {DEMO_PASSWORD}", flush=True)
    print(f"FastAGI route server on port {running.agi_port}; Ctrl-C stops.", flush=True)


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected a number from 0.1 to 1000, got {text!r}")
    return value


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    # The demo's recordings are written here (never into a PBX's spool folder a config may name).
    web_updates: dict[str, object] = {"recordings_dir": args.recordings.resolve()}
    if args.port is not None:
        web_updates["port"] = args.port
    web = settings.web.model_copy(update=web_updates)
    routing = (
        settings.routing
        if args.agi_port is None
        else settings.routing.model_copy(update={"agi_port": args.agi_port})
    )
    from crmtel.app import EXIT_UNWRITTEN, run_until_stopped

    written = await run_until_stopped(
        settings.model_copy(update={"web": web, "routing": routing}),
        demo=True,
        demo_speed=args.speed,
        on_ready=_banner,
    )
    return 0 if written else EXIT_UNWRITTEN
