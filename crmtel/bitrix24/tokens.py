"""The application's OAuth tokens, sealed at rest (Fernet under a key derived from the client secret)."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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


def _fernet(secret: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"crmtel-connector-tokens", info=CONNECTOR.encode()
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class TokenStore:
    """Loads and saves the tokens; a blob sealed under another secret reads as "not installed"."""

    def __init__(self, sealed: SealedTokens, secret: str) -> None:
        self._sealed = sealed
        self._fernet = _fernet(secret)

    async def load(self) -> Tokens | None:
        """The stored tokens, or None (never installed, or sealed under an older client secret)."""
        text = await self._sealed.load(CONNECTOR)
        if text is None:
            return None
        try:
            data = json.loads(self._fernet.decrypt(text.encode()))
        except (InvalidToken, ValueError):
            return None
        return Tokens(**data)

    async def save(self, tokens: Tokens) -> None:
        """Seal and store."""
        sealed = self._fernet.encrypt(json.dumps(asdict(tokens)).encode()).decode()
        await self._sealed.save(CONNECTOR, sealed, datetime.now(UTC))

    async def delete(self) -> None:
        """Forget them."""
        await self._sealed.delete(CONNECTOR)
