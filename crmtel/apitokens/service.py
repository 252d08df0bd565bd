"""Issuing tokens and checking the bearer of a request against the store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from crmtel.apitokens.models import (
    ApiToken,
    Refusal,
    Scope,
    hint,
    looks_like_token,
    new_secret,
    refusal,
    token_hash,
)
from crmtel.store.api_tokens import ApiTokenRepository


def utcnow() -> datetime:
    """Now, aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Issued:
    """A new token: the secret (shown once, never stored) and what the store keeps about it."""

    secret: str
    token: ApiToken


@dataclass(frozen=True, slots=True)
class Bearer:
    """A request's valid token: whose it is and what it may do."""

    token_id: int
    manager_id: int
    scopes: frozenset[Scope]


class ApiTokens:
    """Tokens as the web app and the commands use them; every check asks the store (no cache to invalidate)."""

    def __init__(self, repo: ApiTokenRepository, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._repo = repo
        self._now = clock

    async def issue(
        self, manager_id: int, name: str, scopes: frozenset[Scope], expires_at: datetime | None
    ) -> Issued:
        """Make a token for a manager; only its hash is stored."""
        secret = new_secret()
        token = await self._repo.create(
            token_hash(secret), manager_id, name, scopes, hint(secret), self._now(), expires_at
        )
        return Issued(secret, token)

    async def check(self, secret: str) -> Bearer | Refusal:
        """The bearer of ``secret``, or why it opens nothing (malformed ones never reach the store)."""
        if not looks_like_token(secret):
            return Refusal.INVALID
        now = self._now()
        found = await self._repo.use(token_hash(secret), now)
        token, active = found if found is not None else (None, False)
        why = refusal(token, active, now)
        if why is not None or token is None:
            return why or Refusal.INVALID
        return Bearer(token.id, token.manager_id, token.scopes)
