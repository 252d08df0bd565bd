"""Core subcommands: run the daemon, run the demo, database migrations and configuration checks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crmtel.app import Running, migrate, run_until_stopped
from crmtel.config import Settings
from crmtel.demo import DEMO_LOGINS, DEMO_PASSWORD


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run``, ``demo``, ``db upgrade`` and ``config show``."""
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
        help="run the simulated PBX this many times faster (calls keep their realistic durations); default 1",
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


async def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    await migrate(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


async def _config_show(_args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


async def _run(_args: argparse.Namespace, settings: Settings) -> int:
    await run_until_stopped(settings)
    return 0


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
    await run_until_stopped(
        settings.model_copy(update={"web": web, "routing": routing}),
        demo=True,
        demo_speed=args.speed,
        on_ready=_banner,
    )
    return 0
