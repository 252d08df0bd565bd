"""Cross-site request forgery: every write must carry a token only the page itself can read.

The token is derived from the session token (a hash of it under its own label), so it needs no storage and
ends with the session. The login answer returns it (``csrf_token``) and sets it in a cookie the page's
script can read (``crmtel_csrf``, SameSite=Strict, not HttpOnly); the page sends it back as the
``X-CSRF-Token`` header on every POST, PUT, PATCH and DELETE. Another site can make a browser send the
session cookie but can neither read this cookie nor set that header on a cross-site request.
"""

from __future__ import annotations

import hashlib
import hmac

CSRF_COOKIE = "crmtel_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session."""
    return hashlib.sha256(b"crmtel csrf\x00" + session_token.encode()).hexdigest()


def csrf_valid(session_token: str | None, sent: str | None) -> bool:
    """Whether ``sent`` is the session's CSRF token (compared in constant time)."""
    if not session_token or not sent:
        return False
    return hmac.compare_digest(csrf_token(session_token), sent)
