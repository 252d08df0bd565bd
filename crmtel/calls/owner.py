"""Who owns a call: the one manager its record, the reports, the history and its callback task belong to.

Pure: the call's record, the CRM's answer for its outside number and the configured owners in, a manager out.
Every path that builds a call (the live tracker, the CDR backfill, replay) books its owner with ``owner_of``.

The rule, first that applies:

1. **answered** — the manager whose extension answered (any device of theirs; a call answered on their mobile
   through the trunk after their phone forwarded it is answered by their extension, see the tracker);
2. **placed** — an outbound (or internal) call belongs to the manager who placed it, answered or not;
3. **personal manager** — an inbound call nobody of ours answered belongs to the personal manager of the known
   client (else the lead's manager), when that manager is active;
4. **rang** — else to the first active manager whose phone rang for it (the record's ``rang`` order, which is the
   PBX's order of offers): that manager owns the callback task;
5. **queue owner** — else to the owner the config names for the call's queue (``calls.queue_owners``);
6. **default owner** — else to ``calls.default_owner``.

A call none of these reach (no managers configured at all) has no owner (``None``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from crmtel.domain import CallRecord, Direction


class OwnerReason(enum.StrEnum):
    """Why a manager owns a call (a stable code: logs and tests read it, the page translates it)."""

    ANSWERED = "answered"
    PLACED = "placed"
    PERSONAL_MANAGER = "personal_manager"
    RANG = "rang"
    QUEUE_OWNER = "queue_owner"
    DEFAULT_OWNER = "default_owner"


@dataclass(frozen=True, slots=True)
class Owner:
    """The manager a call belongs to, and which rule made it theirs."""

    manager_id: int
    reason: OwnerReason


@dataclass(frozen=True, slots=True)
class Staff:
    """The team as the owner rule needs it: whose extension is whose, logins, and who no longer works."""

    # A user's extension (device prefixes already stripped) -> manager id.
    by_extension: Mapping[str, int] = field(default_factory=dict)
    by_login: Mapping[str, int] = field(default_factory=dict)
    inactive: frozenset[int] = frozenset()

    def active(self, manager_id: int | None) -> int | None:
        """``manager_id`` if it is a working manager, else None."""
        if manager_id is None or manager_id in self.inactive:
            return None
        return manager_id


@dataclass(frozen=True, slots=True)
class OwnerRules:
    """The configured owners of calls nobody else owns (``[calls] queue_owners``, ``default_owner``: logins)."""

    queue_owners: Mapping[str, str] = field(default_factory=dict)
    default_owner: str | None = None


def owner_of(record: CallRecord, party_manager: int | None, staff: Staff, rules: OwnerRules) -> Owner | None:
    """The call's owner by the rule above; ``party_manager`` is the known client's (or lead's) manager."""
    if record.answered_by is not None:
        answerer = staff.by_extension.get(record.answered_by)
        if answerer is not None:
            return Owner(answerer, OwnerReason.ANSWERED)
    if record.direction in (Direction.OUTBOUND, Direction.INTERNAL):
        placer = staff.by_extension.get(record.caller_number or "")
        if placer is not None:
            return Owner(placer, OwnerReason.PLACED)
    manager = staff.active(party_manager)
    if manager is not None:
        return Owner(manager, OwnerReason.PERSONAL_MANAGER)
    for extension in record.rang:
        manager = staff.active(staff.by_extension.get(extension))
        if manager is not None:
            return Owner(manager, OwnerReason.RANG)
    if record.queue is not None:
        manager = staff.active(staff.by_login.get(rules.queue_owners.get(record.queue, "")))
        if manager is not None:
            return Owner(manager, OwnerReason.QUEUE_OWNER)
    if rules.default_owner is not None:
        manager = staff.active(staff.by_login.get(rules.default_owner))
        if manager is not None:
            return Owner(manager, OwnerReason.DEFAULT_OWNER)
    return None
