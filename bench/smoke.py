"""``--smoke``: every benchmark's seconds-long run of the same code path with tiny sizes.

The suite runs each script under ``bench/`` with ``--smoke`` (``tests/integration/test_bench_smoke.py``) and
checks that it exits 0 and prints the lines its ``FIGURES`` patterns name, so a benchmark cannot rot unnoticed.
A smoke run prints its figures but does not judge them against the targets: they mean nothing at that size.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def add_smoke(parser: argparse.ArgumentParser, **small: Any) -> None:
    """Add ``--smoke``, which replaces the defaults of the named options with ``small`` sizes."""
    sizes = ", ".join(f"--{name.replace('_', '-')} {value}" for name, value in small.items())
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"a seconds-long run of the same path ({sizes}); figures printed, targets not judged",
    )
    parser.set_defaults(smoke_sizes=small)


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the arguments; under ``--smoke`` options left at their default take the small sizes."""
    args = parser.parse_args(argv)
    if args.smoke:
        for name, value in args.smoke_sizes.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def verdict(args: argparse.Namespace, missed: bool) -> int:
    """The exit code: 1 when a full-size run missed its target; a smoke run only has to run."""
    return 1 if missed and not args.smoke else 0


def name(args: argparse.Namespace, base: str) -> str:
    """A database name; a smoke run's own (``<base>_smoke_<pid>``), so it never touches a full-size one."""
    return f"{base}_smoke_{os.getpid()}" if args.smoke else base


def path(args: argparse.Namespace, full: Path) -> Path:
    """A SQLite file; a smoke run's own (``<stem>-smoke-<pid><suffix>``) beside the full-size one."""
    return full.with_name(f"{full.stem}-smoke-{os.getpid()}{full.suffix}") if args.smoke else full
