"""The deal list as CSV lines Excel reads (pure): stage, status and reason in words, the amount as a number."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from crmtel.i18n import Translator
from crmtel.push.calls_csv import as_text
from crmtel.store.crm_deals import DealView as Deal

# The amount is the one column written as a number (a decimal comma in the `;` file).
NUMERIC = frozenset({3})


def _word(prefix: str, code: str | None, tr: Translator) -> str:
    """A code in the reader's language; a configured code with no catalogue entry as written."""
    if not code:
        return ""
    text = tr.t(prefix + code)
    return as_text(code if text == prefix + code else text)


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at is not None else ""


def rows(deals: Sequence[Deal], tr: Translator) -> list[list[str]]:
    """The heading and a line per deal: amounts as ``150000.50`` (a decimal comma in the `;` file), times local
    as ``2026-12-06 14:05`` (Excel reads both in every locale), names kept as text."""
    zone = ZoneInfo(tr.zone)
    out = [
        [
            tr.t("crm.deal"),
            tr.t("page.calls.csv_party"),
            tr.t("crm.field.stage"),
            tr.t("crm.csv.amount"),
            tr.t("crm.field.status"),
            tr.t("crm.lost_reason"),
            tr.t("crm.col.manager"),
            tr.t("crm.csv.next_step"),
            tr.t("crm.csv.next_step_at"),
            tr.t("crm.csv.opened_at"),
            tr.t("crm.csv.closed_at"),
        ]
    ]
    for d in deals:
        out.append(
            [
                as_text(d.title),
                as_text(d.party_name),
                _word("crm.stage.", d.stage, tr),
                f"{d.amount:.2f}",
                _word("crm.deal_status.", d.status, tr),
                _word("crm.lost.", d.lost_reason, tr),
                as_text(d.manager_name),
                as_text(d.next_step),
                _local(d.next_step_at, zone),
                _local(d.opened_at, zone),
                _local(d.closed_at, zone),
            ]
        )
    return out
