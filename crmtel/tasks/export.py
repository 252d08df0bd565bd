"""The task list as CSV lines Excel reads (pure): due and done times local, kind and status in words."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from crmtel.i18n import Translator
from crmtel.push.calls_csv import as_text, number_text
from crmtel.store.crm_tasks import TaskItem

# No column is a number: every cell is written as sent.
NUMERIC: frozenset[int] = frozenset()


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at is not None else ""


def rows(tasks: Sequence[TaskItem], now: datetime, tr: Translator, region: str) -> list[list[str]]:
    """The heading and a line per task: due time local as ``2026-12-07 10:00`` (a date in Excel), the number
    written one way, «Просрочено» for an open task past its due time, texts kept as text."""
    zone = ZoneInfo(tr.zone)
    out = [
        [
            tr.t("crm.csv.due_at"),
            tr.t("crm.field.task_kind"),
            tr.t("crm.field.task_title"),
            tr.t("page.calls.csv_party"),
            tr.t("crm.field.phone"),
            tr.t("crm.col.manager"),
            tr.t("crm.field.status"),
            tr.t("crm.csv.overdue"),
            tr.t("page.fact.result"),
            tr.t("crm.csv.done_at"),
            tr.t("crm.field.note"),
        ]
    ]
    for task in tasks:
        out.append(
            [
                _local(task.due_at, zone),
                tr.t(f"crm.task_kind.{task.kind}"),
                as_text(task.title),
                as_text(task.party_name),
                number_text(task.phone, region) if task.phone else "",
                as_text(task.manager_name),
                tr.t(f"crm.task_status.{task.status}"),
                tr.t("callbacks.overdue") if task.overdue(now) else "",
                as_text(task.result),
                _local(task.done_at, zone),
                as_text(task.note),
            ]
        )
    return out
