"""Server-side login sessions (random tokens, cached in memory, kept in the store)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

COOKIE = "crmtel_session"


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in manager; the token itself is the cookie value."""

    manager_id: int
    expires: float


class Sessions:
    """Opaque session tokens → manager ids, in memory (the cache in front of ``DurableSessions``)."""

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

    def adopt(self, token: str, manager_id: int, remaining_seconds: float) -> None:
        """Remember a session found elsewhere (the store) for the time it has left."""
        self._by_token[token] = Session(manager_id, self._clock() + min(remaining_seconds, self._ttl))

    def drop(self, token: str | None) -> None:
        """End a session (logout)."""
        if token:
            self._by_token.pop(token, None)

    def drop_manager(self, manager_id: int) -> None:
        """End every session of a manager."""
        for token in [t for t, s in self._by_token.items() if s.manager_id == manager_id]:
            del self._by_token[token]

    def tokens(self) -> list[str]:
        """Every token remembered here (expired ones are forgotten first)."""
        now = self._clock()
        for token in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[token]
        return list(self._by_token)


# Tokens are 43 characters; anything much longer is not one of ours and never reaches the store.
_MAX_TOKEN = 100


def token_hash(token: str) -> str:
    """What the store keeps instead of the token: a leaked table opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore(Protocol):
    """Where sessions outlive the process (``crmtel.store.sessions.SessionRepository``)."""

    async def save(self, token_hash: str, manager_id: int, expires_at: datetime, now: datetime) -> None:
        """Store a new session."""
        ...

    async def load(self, token_hash: str, now: datetime) -> tuple[int, datetime] | None:
        """The manager and expiry of a live session."""
        ...

    async def delete(self, token_hash: str) -> None:
        """End one session."""
        ...

    async def delete_manager(self, manager_id: int) -> None:
        """End every session of a manager."""
        ...

    async def alive(self, token_hashes: Collection[str], now: datetime) -> set[str]:
        """Which of these sessions still exist."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DurableSessions:
    """Sessions that survive a restart: checked in memory first, then in the store (only a token hash is kept)."""

    def __init__(
        self,
        cache: Sessions,
        store: SessionStore,
        ttl_seconds: float,
        *,
        wall_clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._cache = cache
        self._store = store
        self._ttl = timedelta(seconds=ttl_seconds)
        self._now = wall_clock

    async def create(self, manager_id: int) -> str:
        """Open a session and return its token."""
        token = self._cache.create(manager_id)
        now = self._now()
        await self._store.save(token_hash(token), manager_id, now + self._ttl, now)
        return token

    async def manager_id(self, token: str | None) -> int | None:
        """The manager a live token belongs to, else None."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        cached = self._cache.manager_id(token)
        if cached is not None:
            return cached
        now = self._now()
        found = await self._store.load(token_hash(token), now)
        if found is None:
            return None
        manager_id, expires_at = found
        self._cache.adopt(token, manager_id, (expires_at - now).total_seconds())
        return manager_id

    async def drop(self, token: str | None) -> None:
        """End a session (logout)."""
        if not token or len(token) > _MAX_TOKEN:
            return
        self._cache.drop(token)
        await self._store.delete(token_hash(token))

    async def drop_manager(self, manager_id: int) -> None:
        """End every session of a manager."""
        self._cache.drop_manager(manager_id)
        await self._store.delete_manager(manager_id)

    async def ended(self, tokens: Iterable[str]) -> set[str]:
        """Which of these tokens no longer open a session; they are forgotten here too.

        Another node's logout, ``crmtel manager passwd`` or deactivation delete the session's row; this is how
        a node that remembers the token learns it (``SessionWatch`` asks every half second).
        """
        by_hash = {token_hash(t): t for t in dict.fromkeys([*tokens, *self._cache.tokens()]) if t}
        if not by_hash:
            return set()
        alive = await self._store.alive(by_hash.keys(), self._now())
        gone = {token for digest, token in by_hash.items() if digest not in alive}
        for token in gone:
            self._cache.drop(token)
        return gone
