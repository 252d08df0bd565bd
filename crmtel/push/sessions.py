"""Server-side login sessions (random tokens held in memory) and a brake on password guessing."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "crmtel_session"


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in manager; the token itself is the cookie value."""

    manager_id: int
    expires: float


class Sessions:
    """Opaque session tokens → manager ids; a restart logs everyone out (nothing to steal at rest)."""

    def __init__(self, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._by_token: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._by_token)

    def create(self, manager_id: int) -> str:
        """Open a session and return its token."""
        now = self._clock()
        for token in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[token]
        token = secrets.token_urlsafe(32)
        self._by_token[token] = Session(manager_id, now + self._ttl)
        return token

    def manager_id(self, token: str | None) -> int | None:
        """The manager a live token belongs to, else None (expired tokens are forgotten)."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._by_token[token]
            return None
        return session.manager_id

    def drop(self, token: str | None) -> None:
        """End a session (logout)."""
        if token:
            self._by_token.pop(token, None)

    def drop_manager(self, manager_id: int) -> None:
        """End every session of a manager."""
        for token in [t for t, s in self._by_token.items() if s.manager_id == manager_id]:
            del self._by_token[token]


class LoginThrottle:
    """Refuses further attempts for a login (or from an address) after too many failures in a window."""

    def __init__(
        self, *, max_failures: int = 10, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        cutoff = self._clock() - self._window
        kept = [t for t in self._failures.get(key, ()) if t > cutoff]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def blocked(self, *keys: str) -> bool:
        """Whether any of the keys has used up its failures."""
        return any(len(self._recent(k)) >= self._max for k in keys)

    def failed(self, *keys: str) -> None:
        """Count a failed attempt against every key."""
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, []).append(now)

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of a login that got in."""
        for key in keys:
            self._failures.pop(key, None)
