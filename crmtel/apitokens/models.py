"""Scopes, which route needs which, and the token's shape (pure: no I/O).

A token acts as the manager it belongs to: what the manager may see and change, narrowed to the routes its
scopes open. A route missing from ``ROUTE_SCOPES`` is open to the browser session only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# Every token starts with this, so a leaked one is found by grepping logs, repositories and pastes.
PREFIX = "crmtel_"
# The secret after the prefix: 32 random bytes, URL-safe base64 (43 characters).
_SHAPE = re.compile(r"^crmtel_[A-Za-z0-9_-]{43}$")
# The first characters of the secret are kept in clear so an admin can tell tokens apart (`crmtel token list`).
HINT_CHARS = 4


class Scope(StrEnum):
    """What a token may do; a route needs exactly one of these."""

    CALLS_READ = "calls:read"
    CALLS_WRITE = "calls:write"
    CRM_READ = "crm:read"
    CRM_WRITE = "crm:write"
    DIAL = "dial"
    REPORTS_READ = "reports:read"


SCOPE_HELP: dict[Scope, str] = {
    Scope.CALLS_READ: "call history, one call, its recording, result codes, callback tasks",
    Scope.CALLS_WRITE: "notes and results on calls, closing callback tasks",
    Scope.CRM_READ: "clients, leads, deals, tasks, the team, search, CRM settings",
    Scope.CRM_WRITE: "create and edit clients, leads, deals and tasks (also from a call)",
    Scope.DIAL: "click-to-call from the manager's own phone and its status",
    Scope.REPORTS_READ: "reports (calls vs deals, queues) and the heads' board data",
}

# Any valid token, whatever its scopes (who am I).
ANY = "any"

# (method, route as mounted) -> the scope it needs. Not listed: the browser session only (the page, the
# websocket, logout, the page's language).
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/api/me"): ANY,
    ("GET", "/api/board"): Scope.REPORTS_READ,
    ("GET", "/api/call-results"): Scope.CALLS_READ,
    ("GET", "/api/calls"): Scope.CALLS_READ,
    ("GET", "/api/calls.csv"): Scope.CALLS_READ,
    ("GET", "/api/calls/{call_id}"): Scope.CALLS_READ,
    ("GET", "/api/calls/{call_id}/recording"): Scope.CALLS_READ,
    ("POST", "/api/calls/{call_id}/notes"): Scope.CALLS_WRITE,
    ("PUT", "/api/calls/{call_id}/result"): Scope.CALLS_WRITE,
    ("POST", "/api/calls/{call_id}/deals"): Scope.CRM_WRITE,
    ("POST", "/api/calls/{call_id}/lead"): Scope.CRM_WRITE,
    ("POST", "/api/calls/{call_id}/tasks"): Scope.CRM_WRITE,
    ("GET", "/api/callbacks"): Scope.CALLS_READ,
    ("POST", "/api/callbacks/{task_id}/close"): Scope.CALLS_WRITE,
    ("GET", "/api/crm/settings"): Scope.CRM_READ,
    ("GET", "/api/managers"): Scope.CRM_READ,
    ("GET", "/api/search"): Scope.CRM_READ,
    ("GET", "/api/{kind}"): Scope.CRM_READ,
    ("GET", "/api/{kind}.csv"): Scope.CRM_READ,
    ("POST", "/api/{kind}"): Scope.CRM_WRITE,
    ("GET", "/api/{kind}/{party_id}"): Scope.CRM_READ,
    ("PATCH", "/api/{kind}/{party_id}"): Scope.CRM_WRITE,
    ("POST", "/api/{kind}/{party_id}/merge"): Scope.CRM_WRITE,
    ("POST", "/api/{kind}/{party_id}/notes"): Scope.CRM_WRITE,
    ("PUT", "/api/{kind}/{party_id}/shares"): Scope.CRM_WRITE,
    ("GET", "/api/{kind}/{party_id}/timeline"): Scope.CRM_READ,
    ("POST", "/api/leads/{party_id}/convert"): Scope.CRM_WRITE,
    ("GET", "/api/deals"): Scope.CRM_READ,
    ("GET", "/api/deals.csv"): Scope.CRM_READ,
    ("POST", "/api/deals"): Scope.CRM_WRITE,
    ("GET", "/api/deals/pipeline"): Scope.CRM_READ,
    ("GET", "/api/deals/{deal_id}"): Scope.CRM_READ,
    ("PATCH", "/api/deals/{deal_id}"): Scope.CRM_WRITE,
    ("GET", "/api/tasks"): Scope.CRM_READ,
    ("GET", "/api/tasks.csv"): Scope.CRM_READ,
    ("POST", "/api/tasks"): Scope.CRM_WRITE,
    ("PATCH", "/api/tasks/{task_id}"): Scope.CRM_WRITE,
    ("POST", "/api/tasks/{task_id}/complete"): Scope.CRM_WRITE,
    ("POST", "/api/tasks/{task_id}/reopen"): Scope.CRM_WRITE,
    ("POST", "/api/dial"): Scope.DIAL,
    ("GET", "/api/dial/{originate_id}"): Scope.DIAL,
    ("GET", "/reports/calls-vs-deals"): Scope.REPORTS_READ,
    ("GET", "/reports/calls-vs-deals.{fmt}"): Scope.REPORTS_READ,
    ("GET", "/reports/queues"): Scope.REPORTS_READ,
    ("GET", "/reports/queues.{fmt}"): Scope.REPORTS_READ,
}


def parse_scopes(texts: list[str]) -> frozenset[Scope]:
    """Scopes from the command line (repeatable or comma-separated); an unknown one is a ValueError."""
    found: set[Scope] = set()
    for text in texts:
        for part in text.split(","):
            name = part.strip()
            if not name:
                continue
            try:
                found.add(Scope(name))
            except ValueError:
                choices = ", ".join(s.value for s in Scope)
                raise ValueError(f"unknown scope {name!r} (one of {choices})") from None
    if not found:
        raise ValueError("a token needs at least one scope")
    return frozenset(found)


def new_secret() -> str:
    """A fresh token: the prefix and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def looks_like_token(text: str) -> bool:
    """Whether ``text`` has a token's shape (anything else is refused before the store is asked)."""
    return bool(_SHAPE.match(text))


def token_hash(secret: str) -> str:
    """What the store keeps: SHA-256 of the whole token (256 random bits need no slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hint(secret: str) -> str:
    """The non-secret beginning shown in lists: ``crmtel_AbCd…``."""
    return secret[: len(PREFIX) + HINT_CHARS]


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token as the store describes it (never the secret)."""

    id: int
    manager_id: int
    manager_login: str
    name: str
    scopes: frozenset[Scope]
    hint: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class Refusal(StrEnum):
    """Why a bearer token opens nothing (the catalogue key's tail)."""

    INVALID = "token_invalid"
    REVOKED = "token_revoked"
    EXPIRED = "token_expired"
    INACTIVE = "token_manager_inactive"


def refusal(token: ApiToken | None, manager_active: bool, now: datetime) -> Refusal | None:
    """Whether a looked-up token may act now, and if not why."""
    if token is None:
        return Refusal.INVALID
    if token.revoked_at is not None:
        return Refusal.REVOKED
    if token.expires_at is not None and token.expires_at <= now:
        return Refusal.EXPIRED
    if not manager_active:
        return Refusal.INACTIVE
    return None


def allows(scopes: frozenset[Scope], needed: str) -> bool:
    """Whether a token with ``scopes`` may call a route needing ``needed``."""
    return needed == ANY or needed in scopes
