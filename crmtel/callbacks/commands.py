"""``crmtel tasks list [--open|--all] [--manager LOGIN] [--format table|json]``: the callback tasks."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from crmtel.callbacks.web import task_json
from crmtel.config import Settings
from crmtel.errors import NotFound
from crmtel.store.callbacks import CallbackRepository, TaskView
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository

COLUMNS = (
    "id",
    "phone",
    "status",
    "missed_count",
    "first_missed_at",
    "due_at",
    "closed_at",
    "closed_by_call",
    "manager",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tasks list``."""
    tasks = subparsers.add_parser("tasks", help="callback tasks for missed calls")
    sub = tasks.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="list callback tasks (open ones by default)")
    which = listing.add_mutually_exclusive_group()
    which.add_argument(
        "--open", dest="which", action="store_const", const="open", help="open tasks (default)"
    )
    which.add_argument("--all", dest="which", action="store_const", const="all", help="open and closed tasks")
    listing.add_argument("--manager", metavar="LOGIN", help="only this manager's tasks")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=list_tasks, which="open")


def _row(task: TaskView) -> dict[str, Any]:
    data = task_json(task, datetime.now(UTC))
    return {name: data[name] for name in COLUMNS}


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [[("" if row[c] is None else str(row[c])) for c in COLUMNS] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


async def list_tasks(args: argparse.Namespace, settings: Settings) -> int:
    """Print the tasks."""
    db = Database(settings.database_url)
    try:
        manager_id: int | None = None
        if args.manager:
            manager = await ManagerRepository(db).by_login(args.manager)
            if manager is None:
                raise NotFound(f"no manager with login {args.manager!r}")
            manager_id = manager.id
        found = await CallbackRepository(db).tasks(
            status=None if args.which == "all" else "open", manager_id=manager_id, limit=100_000
        )
    finally:
        await db.dispose()
    rows = [_row(t) for t in found]
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print(_table(rows) if rows else "no tasks")
    return 0
