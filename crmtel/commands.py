"""Core subcommands: database migrations and configuration checks."""

from __future__ import annotations

import argparse
import json

from crmtel.config import Settings
from crmtel.store.db import upgrade


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db upgrade`` and ``config show``."""
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
    await upgrade(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


async def _config_show(_args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0
