"""The client and lead lists as CSV lines Excel reads (pure): numbers written one way, amounts as numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from crmtel.crm.models import PartyListItem
from crmtel.crm.schemas import PartyListQuery
from crmtel.i18n import Translator
from crmtel.push.calls_csv import as_text

# The columns written as numbers (open deals, turnover): only these get a decimal comma in the `;` file.
NUMERIC = frozenset({6, 8})


class PartyCsvQuery(PartyListQuery):
    """The list's search, filters and sort, and ``sep=comma`` for a comma-separated file."""

    sep: Literal["comma"] | None = None


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at is not None else ""


def _word(prefix: str, code: str | None, tr: Translator) -> str:
    return tr.t(prefix + code) if code else ""


def rows(items: Sequence[PartyListItem], numbers: Mapping[str, str], tr: Translator) -> list[list[str]]:
    """The heading and a line per client or lead: numbers as ``+7 916 777-00-07`` (never a bare number Excel
    would cut), the turnover as ``150000.00`` (a decimal comma in the `;` file), times local as
    ``2026-12-06 14:05``, names kept as text."""
    zone = ZoneInfo(tr.zone)
    out = [
        [
            tr.t("crm.field.name"),
            tr.t("crm.field.company"),
            tr.t("crm.field.category"),
            tr.t("crm.field.status"),
            tr.t("crm.col.manager"),
            tr.t("crm.field.phones"),
            tr.t("crm.csv.open_deals"),
            tr.t("crm.col.last"),
            tr.t("crm.field.turnover"),
            tr.t("crm.csv.created_at"),
        ]
    ]
    for item in items:
        out.append(
            [
                as_text(item.name),
                as_text(item.company),
                _word("page.category.", item.category, tr),
                _word("crm.lead_status.", item.status, tr),
                as_text(item.manager_name),
                ", ".join(numbers.get(p, p) for p in item.phones),
                str(item.open_deals),
                _local(item.last_call_at, zone),
                f"{item.turnover:.2f}" if item.turnover is not None else "",
                _local(item.created_at, zone),
            ]
        )
    return out
