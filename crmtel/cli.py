"""The ``crmtel`` command: parses arguments, loads settings once, and runs one subcommand.

The config file is checked (size, kind, text, depth) before anything heavy is imported, so a hostile
``--config`` (``/dev/zero``, a binary, a key nested 100,000 deep) is one line and an exit within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from crmtel import __version__
from crmtel.configfile import read_config
from crmtel.errors import ConfigError, ConfigProblems, CrmtelError

if TYPE_CHECKING:
    from crmtel.config import Settings

Handler = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]


def _feature_modules() -> list[ModuleType]:
    # Each feature owns its subcommands; imported here, at run time, so `import crmtel` stays side-effect free.
    from crmtel import commands
    from crmtel.amocrm import commands as amocrm_commands
    from crmtel.apitokens import commands as token_commands
    from crmtel.bitrix24 import commands as bitrix24_commands
    from crmtel.callbacks import commands as callback_commands
    from crmtel.calls import commands as calls_commands
    from crmtel.cdr import commands as cdr_commands
    from crmtel.connectors import commands as outbox_commands
    from crmtel.dial import commands as dial_commands
    from crmtel.exchange import commands as exchange_commands
    from crmtel.managers import commands as manager_commands
    from crmtel.reports import commands as report_commands
    from crmtel.routing import commands as routing_commands

    return [
        commands,
        exchange_commands,
        manager_commands,
        routing_commands,
        report_commands,
        calls_commands,
        cdr_commands,
        dial_commands,
        callback_commands,
        outbox_commands,
        amocrm_commands,
        token_commands,
        bitrix24_commands,
    ]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every feature's subcommands."""
    parser = argparse.ArgumentParser(
        prog="crmtel", description="Asterisk telephony integration for sales teams."
    )
    parser.add_argument("--version", action="version", version=f"crmtel {__version__}")
    parser.add_argument("--config", type=Path, help="TOML config file (environment CRMTEL_* overrides it)")
    parser.add_argument("--database-url", help="override the database URL (CRMTEL_DATABASE_URL)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _feature_modules():
        module.register(subparsers)
    return parser


def _database_url_line(args: argparse.Namespace, settings: Settings) -> str | None:
    from crmtel.config import origins_of
    from crmtel.configcheck.checks import database_url_problem
    from crmtel.configcheck.messages import Problem

    found = database_url_problem(settings.database_url)
    if found is None:
        return None
    return str(Problem(origins_of(args.config, args.overrides).of(("database_url",)), *found))


def _config_file_problem(argv: Sequence[str] | None) -> int | None:
    """Read ``--config`` before the heavy imports: the exit code for a file that is no config, else None."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config", type=Path)
    early.add_argument("--database-url")
    try:
        known, rest = early.parse_known_args(argv)
    except SystemExit:
        return None  # the full parser says what is wrong with the arguments
    if known.config is None:
        return None
    try:
        read_config(known.config)
    except ConfigError as err:
        print(f"crmtel: {err}", file=sys.stderr)
        # `config check` promises 0 or 1; elsewhere a config that cannot be loaded is a usage error.
        return 1 if rest[:2] == ["config", "check"] else 2
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    early = _config_file_problem(argv)
    if early is not None:
        return early
    from crmtel.config import load_settings
    from crmtel.configcheck.messages import Redactor, mask_url
    from crmtel.logging import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {"database_url": args.database_url} if args.database_url else {}
    args.overrides = overrides
    try:
        settings = load_settings(args.config, **overrides)
    except CrmtelError as err:
        lines = err.lines if isinstance(err, ConfigProblems) else (mask_url(str(err)),)
        for line in lines:
            print(f"crmtel: {line}", file=sys.stderr)
        # `config check` promises 0 or 1; elsewhere a config that cannot be loaded is a usage error.
        return 1 if getattr(args, "config_command", None) == "check" else 2
    if args.command != "config":
        # Every other command opens the database: a URL it cannot use is one clear line, not a traceback.
        unusable = _database_url_line(args, settings)
        if unusable is not None:
            print(f"crmtel: {unusable}", file=sys.stderr)
            return 1
    redact = Redactor.for_settings(settings)
    configure(settings.log, redact=redact)
    handler: Handler = args.handler
    try:
        code = asyncio.run(handler(args, settings))
        # Flushed here, not at exit, so a reader that went away is noticed below instead of in a traceback.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `crmtel calls list | head`: head has what it wanted. Point stdout at /dev/null so the interpreter's
        # last flush stays quiet, and exit as a program stopped by SIGPIPE would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except CrmtelError as err:
        print(f"crmtel: {redact(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
