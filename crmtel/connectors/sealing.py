"""Secrets at rest: a connector's tokens sealed with Fernet under a key derived (HKDF) from its client secret."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Sealer:
    """Seals and opens JSON objects for one connector; a blob sealed under another secret opens as None."""

    def __init__(self, secret: str, connector: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"crmtel-connector-tokens", info=connector.encode()
        ).derive(secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, data: dict[str, Any]) -> str:
        """The sealed text of ``data``."""
        return self._fernet.encrypt(json.dumps(data).encode()).decode()

    def open(self, text: str) -> dict[str, Any] | None:
        """The object, or None when the text was sealed under another secret (or is not ours)."""
        try:
            data = json.loads(self._fernet.decrypt(text.encode()))
        except (InvalidToken, ValueError):
            return None
        return data if isinstance(data, dict) else None
