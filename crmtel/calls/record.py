"""The call record as the rest of crmtel sees it."""

from __future__ import annotations

from crmtel.domain import CallRecord


def party_number(record: CallRecord) -> str | None:
    """The outside party's E.164 number (the caller inbound, the dialled number outbound), for CRM lookups."""
    return record.extra.get("party_number")
