"""Rules of the CRM's records, as pure functions: what a valid card holds, who may assign whom."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crmtel.crm.models import Viewer
from crmtel.phones import PhoneKind, normalize

PHONE_KINDS = ("mobile", "work", "home", "fax", "other")
TASK_KINDS = ("callback", "call", "meeting", "email", "other")
# Deal stages when the configuration names none (codes; the page names them in the reader's language).
DEFAULT_STAGES = ("new", "qualification", "proposal", "negotiation", "invoice")
DEFAULT_LOST_REASONS = ("price", "competitor", "no_budget", "no_answer", "not_relevant", "other")
MAX_TAGS = 20
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,63}$")
_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


@dataclass(frozen=True, slots=True)
class Problem:
    """A field that is not valid: its name and the catalogue key saying why."""

    field: str
    key: str


def _check(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def inn_valid(inn: str) -> bool:
    """A Russian INN: 10 digits (a company) or 12 (a person or sole trader) with their check digits."""
    if not inn.isdigit():
        return False
    if len(inn) == 10:
        return _check(inn, _INN10) == int(inn[9])
    if len(inn) == 12:
        return _check(inn, _INN12_1) == int(inn[10]) and _check(inn, _INN12_2) == int(inn[11])
    return False


def email_valid(email: str) -> bool:
    """Plausibly an address (one @, a dot in the domain, no spaces); whether it exists is not ours to say."""
    return len(email) <= 300 and _EMAIL.match(email) is not None


def phone_e164(raw: str, region: str) -> str | None:
    """An outside number as E.164, None for anything else (extensions, words)."""
    phone = normalize(raw, region)
    return phone.value if phone.kind is PhoneKind.E164 else None


def may_assign(viewer: Viewer, current: int | None, wanted: int | None) -> bool:
    """Whether the viewer may make ``wanted`` responsible for a record now held by ``current``.

    A head assigns anyone; a manager may take an unassigned record for themself and nothing else.
    """
    if viewer.head or wanted == current:
        return True
    return current is None and wanted == viewer.manager_id


def clean_tags(tags: list[str]) -> tuple[str, ...]:
    """Tags trimmed, without repeats (case-insensitive), in the order given."""
    seen: dict[str, str] = {}
    for tag in tags:
        text = " ".join(tag.split())[:50]
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return tuple(seen.values())
