"""The application's OAuth tokens, sealed at rest (``crmtel.connectors.sealing``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from crmtel.connectors.sealing import Sealer
from crmtel.store.outbox import SealedTokens

CONNECTOR = "bitrix24"


@dataclass(frozen=True, slots=True)
class Tokens:
    """What the portal gave on install and each refresh."""

    access_token: str
    refresh_token: str
    expires_at: float
    application_token: str
    member_id: str = ""

    def __repr__(self) -> str:  # never a token in a log line or a traceback
        return f"Tokens(expires_at={self.expires_at}, member_id={self.member_id!r})"


class TokenStore:
    """Loads and saves the tokens; a blob sealed under another secret reads as "not installed"."""

    def __init__(self, sealed: SealedTokens, secret: str) -> None:
        self._sealed = sealed
        self._sealer = Sealer(secret, CONNECTOR)

    async def load(self) -> Tokens | None:
        """The stored tokens, or None (never installed, or sealed under an older client secret)."""
        text = await self._sealed.load(CONNECTOR)
        if text is None:
            return None
        data = self._sealer.open(text)
        if data is None:
            return None
        try:
            return Tokens(**data)
        except TypeError:
            return None

    async def save(self, tokens: Tokens) -> None:
        """Seal and store."""
        await self._sealed.save(CONNECTOR, self._sealer.seal(asdict(tokens)), datetime.now(UTC))

    async def delete(self) -> None:
        """Forget them."""
        await self._sealed.delete(CONNECTOR)
