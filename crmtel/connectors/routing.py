"""Routing by the outside CRM's responsible manager: when crmtel's own CRM names nobody for a caller, it may.

A ``PartyLookup`` around crmtel's own: a caller with no usable personal manager is looked up in the CRM (a
``ResponsibleSource``: Bitrix24's ``searchCrmEntities``, amoCRM's contact search); the extension of the
responsible user becomes a match with that crmtel manager, so the routing rules send the call to them. Answers
(found or not) are cached for ``ttl`` seconds; the routing deadline still bounds everything and any failure of
the CRM fails open (crmtel's own result, as without it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import structlog

from crmtel.domain import LookupResult, PartyKind, PartyMatch
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.store.managers import staff_in

_log = structlog.get_logger("crmtel.connectors")

# (extension, the CRM's name for the record, crmtel manager id, whether that manager is active)
Found = tuple[str, str, int, bool]
# The CRM's match ranks after every one of crmtel's own (its id is the CRM's, not crmtel's).
RANK = 90


class PartyLookup(Protocol):
    """crmtel's own lookup (``crmtel.store.parties.PartyRepository``)."""

    async def lookup(self, e164: str) -> LookupResult:
        """Every CRM record the number belongs to, best first."""
        ...


class ResponsibleSource(Protocol):
    """One outside CRM's answer to "whose client is this number?"."""

    name: str

    async def responsible(self, e164: str) -> tuple[str | None, str]:
        """(the responsible user's extension, the record's name); CrmtelError when the CRM cannot answer."""
        ...


def _has_manager(result: LookupResult) -> bool:
    return any(m.manager_id is not None and m.manager_active and m.manager_extensions for m in result.matches)


class CrmResponsible:
    """crmtel's lookup, completed by an outside CRM's responsible manager (cached, failing open)."""

    def __init__(
        self,
        inner: PartyLookup,
        source: ResponsibleSource,
        db: Database,
        *,
        ttl: float = 600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.source = source
        self.db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Found | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def lookup(self, e164: str) -> LookupResult:
        """crmtel's result; with the CRM's responsible manager added when crmtel's names none."""
        local = await self.inner.lookup(e164)
        if _has_manager(local):
            return local
        found = await self._ask(e164)
        if found is None:
            return local
        extension, name, manager, active = found
        if not local.matches:
            label = f"{self.source.name}: {name}" if name else self.source.name
            match = PartyMatch(
                kind=PartyKind.CLIENT,
                id=0,
                name=label,
                rank=RANK,
                manager_id=manager,
                manager_extensions=(extension,),
                manager_active=active,
            )
            return LookupResult(local.e164, (match,))
        # crmtel's own records keep their place (stop list, turnover); the CRM's adds the manager.
        best = replace(
            local.matches[0],
            manager_id=manager,
            manager_name=None,
            manager_extensions=(extension,),
            manager_active=active,
        )
        return LookupResult(local.e164, (best, *local.matches[1:]))

    def cached(self, e164: str) -> bool:
        """Whether the CRM's answer for ``e164`` is in the cache (and fresh)."""
        entry = self._cache.get(e164)
        return entry is not None and entry[0] > self._clock()

    async def _ask(self, e164: str) -> Found | None:
        now = self._clock()
        cached = self._cache.get(e164)
        if cached is not None and cached[0] > now:
            self.hits += 1
            self._cache.move_to_end(e164)
            return cached[1]
        self.misses += 1
        try:
            extension, name = await self.source.responsible(e164)
        except CrmtelError as err:
            # Fail open, and not cached: the next call asks again.
            _log.warning("routing.crm_lookup_failed", crm=self.source.name, error=str(err)[:200])
            return None
        answer: Found | None = None
        if extension is not None:
            async with self.db.session() as session:
                staff = await staff_in(session, {extension}, ())
            manager = staff.by_extension.get(extension)
            if manager is not None:
                answer = (extension, name, manager, staff.active(manager) is not None)
        self._cache[e164] = (now + self.ttl, answer)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return answer
