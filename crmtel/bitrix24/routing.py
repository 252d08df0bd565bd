"""Routing by Bitrix24's responsible manager: when crmtel's own CRM names nobody for a caller, the portal may.

A ``PartyLookup`` around crmtel's own: a caller with no usable personal manager is looked up with
``telephony.externalCall.searchCrmEntities``; the first entity's responsible user (``ASSIGNED_BY``, by internal
number) becomes a match with that crmtel manager, so the routing rules send the call to them. Answers (found
or not) are cached for ``ttl`` seconds; the routing deadline still bounds everything and any failure of the
portal fails open (crmtel's own result, as without Bitrix24).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import structlog

from crmtel.bitrix24.client import B24Error, Bitrix24Client
from crmtel.bitrix24.service import Users
from crmtel.domain import LookupResult, PartyKind, PartyMatch
from crmtel.store.db import Database
from crmtel.store.managers import staff_in

_log = structlog.get_logger("crmtel.bitrix24")

# (internal number, entity name, crmtel manager id, whether that manager is active)
_Found = tuple[str, str, int, bool]
# The Bitrix24 match ranks after every one of crmtel's own (its id is the portal's entity id, not crmtel's).
RANK = 90


class PartyLookup(Protocol):
    """crmtel's own lookup (``crmtel.store.parties.PartyRepository``)."""

    async def lookup(self, e164: str) -> LookupResult:
        """Every CRM record the number belongs to, best first."""
        ...


def _has_manager(result: LookupResult) -> bool:
    return any(m.manager_id is not None and m.manager_active and m.manager_extensions for m in result.matches)


def responsible_extension(found: Any) -> tuple[str | None, int | None, str]:
    """(internal number, portal user id, entity name) of the first entity searchCrmEntities found."""
    if not isinstance(found, list) or not found or not isinstance(found[0], dict):
        return None, None, ""
    first: dict[str, Any] = found[0]
    by = first.get("ASSIGNED_BY")
    assigned: dict[str, Any] = by if isinstance(by, dict) else {}
    inner = str(assigned.get("USER_PHONE_INNER") or "").strip() or None
    raw_id = str(first.get("ASSIGNED_BY_ID") or assigned.get("ID") or "")
    user = int(raw_id) if raw_id.isdigit() else None
    return inner, user, str(first.get("NAME") or "")[:200]


class Bitrix24Responsible:
    """crmtel's lookup, completed by the portal's responsible manager (cached, failing open)."""

    def __init__(
        self,
        inner: PartyLookup,
        client: Bitrix24Client,
        users: Users,
        db: Database,
        *,
        ttl: float = 600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.client = client
        self.users = users
        self.db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        # e164 -> (until, (extension, entity name, crmtel manager id, active) or None for "nobody").
        self._cache: OrderedDict[str, tuple[float, _Found | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def lookup(self, e164: str) -> LookupResult:
        """crmtel's result; with Bitrix24's responsible manager added when crmtel's names none."""
        local = await self.inner.lookup(e164)
        if _has_manager(local):
            return local
        found = await self._portal(e164)
        if found is None:
            return local
        extension, name, manager, active = found
        match = PartyMatch(
            kind=PartyKind.CLIENT,
            id=0,
            name=f"Bitrix24: {name}" if name else "Bitrix24",
            rank=RANK,
            manager_id=manager,
            manager_extensions=(extension,),
            manager_active=active,
        )
        if not local.matches:
            return LookupResult(local.e164, (match,))
        # crmtel's own records keep their place (stop list, turnover); the portal's adds the manager.
        best = replace(
            local.matches[0],
            manager_id=manager,
            manager_name=None,
            manager_extensions=(extension,),
            manager_active=active,
        )
        matches = (best, *local.matches[1:])
        return LookupResult(local.e164, tuple(matches))

    def cached(self, e164: str) -> bool:
        """Whether the portal's answer for ``e164`` is in the cache (and fresh)."""
        entry = self._cache.get(e164)
        return entry is not None and entry[0] > self._clock()

    async def _portal(self, e164: str) -> _Found | None:
        """The responsible crmtel manager the portal names for ``e164`` (cached, found or not), or None."""
        now = self._clock()
        cached = self._cache.get(e164)
        if cached is not None and cached[0] > now:
            self.hits += 1
            self._cache.move_to_end(e164)
            return cached[1]
        self.misses += 1
        try:
            found = await self.client.call(
                "telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": e164.lstrip("+")}
            )
            inner, user, name = responsible_extension(found)
            if inner is None and user is not None:
                inner = await self.users.extension_of(user)
        except B24Error as err:
            # Fail open, and not cached: the next call asks again.
            _log.warning("bitrix24.search_failed", error=f"{err.status} {err.code}")
            return None
        answer: _Found | None = None
        if inner is not None:
            async with self.db.session() as session:
                staff = await staff_in(session, {inner}, ())
            manager = staff.by_extension.get(inner)
            if manager is not None:
                answer = (inner, name, manager, staff.active(manager) is not None)
        self._cache[e164] = (now + self.ttl, answer)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return answer
