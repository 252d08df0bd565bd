"""Standard Webhooks signatures: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body`` under a ``whsec_`` secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"


class BadSecret(ValueError):
    """The secret is not ``whsec_`` followed by base64."""


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a ``whsec_…`` secret."""
    if not secret.startswith(PREFIX):
        raise BadSecret("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadSecret("a webhook secret is whsec_ followed by base64") from err
    if len(key) < 16:
        raise BadSecret("a webhook secret holds at least 16 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """Whether any ``v1`` signature in ``header`` (space-separated) is right for this message."""
    expected = sign(secret, msg_id, timestamp, body).encode()
    return any(
        hmac.compare_digest(expected, part.encode()) for part in header.split() if part.startswith("v1,")
    )
