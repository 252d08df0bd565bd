"""Bitrix24's answer to "whose client is this number?": ``telephony.externalCall.searchCrmEntities``."""

from __future__ import annotations

from typing import Any

from crmtel.bitrix24.client import Bitrix24Client
from crmtel.bitrix24.service import Users
from crmtel.connectors.routing import CrmResponsible, PartyLookup
from crmtel.store.db import Database


def responsible_extension(found: Any) -> tuple[str | None, int | None, str]:
    """(internal number, portal user id, entity name) of the first entity searchCrmEntities found."""
    if not isinstance(found, list) or not found or not isinstance(found[0], dict):
        return None, None, ""
    first: dict[str, Any] = found[0]
    by = first.get("ASSIGNED_BY")
    assigned: dict[str, Any] = by if isinstance(by, dict) else {}
    inner = str(assigned.get("USER_PHONE_INNER") or "").strip() or None
    raw_id = str(first.get("ASSIGNED_BY_ID") or assigned.get("ID") or "")
    user = int(raw_id) if raw_id.isdigit() else None
    return inner, user, str(first.get("NAME") or "")[:200]


class Bitrix24Source:
    """The first entity's responsible user (``ASSIGNED_BY``), by internal number."""

    name = "Bitrix24"

    def __init__(self, client: Bitrix24Client, users: Users) -> None:
        self.client = client
        self.users = users

    async def responsible(self, e164: str) -> tuple[str | None, str]:
        """(internal number, entity name); B24Error when the portal cannot answer."""
        found = await self.client.call(
            "telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": e164.lstrip("+")}
        )
        inner, user, name = responsible_extension(found)
        if inner is None and user is not None:
            inner = await self.users.extension_of(user)
        return inner, name


class Bitrix24Responsible(CrmResponsible):
    """crmtel's lookup completed by the portal's responsible manager."""

    def __init__(
        self, inner: PartyLookup, client: Bitrix24Client, users: Users, db: Database, **options: Any
    ) -> None:
        super().__init__(inner, Bitrix24Source(client, users), db, **options)
