"""amoCRM's answer to "whose client is this number?": the contact search's ``responsible_user_id``."""

from __future__ import annotations

from typing import Any

from crmtel.amocrm.client import AmoClient
from crmtel.config import AmoCrmSettings


class AmoSource:
    """``GET /api/v4/contacts?query=<number>``: the first contact's responsible user, by ``[amocrm.users]``."""

    name = "amoCRM"

    def __init__(self, settings: AmoCrmSettings, client: AmoClient) -> None:
        self.client = client
        self._extension_of = {user: ext for ext, user in settings.users.items()}

    async def responsible(self, e164: str) -> tuple[str | None, str]:
        """(extension of the responsible user, contact name); AmoError when amoCRM cannot answer."""
        found: Any = await self.client.request("GET", "/api/v4/contacts", params={"query": e164})
        contacts = (found or {}).get("_embedded", {}).get("contacts") if isinstance(found, dict) else None
        if not contacts or not isinstance(contacts[0], dict):
            return None, ""
        first = contacts[0]
        user = first.get("responsible_user_id")
        extension = self._extension_of.get(user) if isinstance(user, int) else None
        return extension, str(first.get("name") or "")[:200]
