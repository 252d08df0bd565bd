"""Phone numbers: normalised once, at the edge, to E.164 with the phonenumbers library."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import phonenumbers

# Longest raw string we even try to parse: anything longer is garbage, not a phone number.
_MAX_RAW = 64
# Internal extensions are short ASCII-digit strings (e.g. 101, 2001); never E.164 (and never "1١٢").
_EXTENSION_RE = re.compile(r"^\d{2,6}$", re.ASCII)
_ANONYMOUS = frozenset({"anonymous", "restricted", "private", "unavailable", "unknown", "<unknown>"})


def is_extension(text: str) -> bool:
    """Whether ``text`` is an internal extension number (2-6 digits, as calls show them)."""
    return bool(_EXTENSION_RE.match(text))


class PhoneKind(enum.StrEnum):
    """What a raw caller-id string turned out to be."""

    E164 = "e164"
    EXTENSION = "extension"
    ANONYMOUS = "anonymous"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Phone:
    """A raw number and what it normalises to; ``value`` is E.164 or the extension digits."""

    raw: str
    kind: PhoneKind
    value: str | None

    @property
    def e164(self) -> str | None:
        """The E.164 form, when the number is an outside number."""
        return self.value if self.kind is PhoneKind.E164 else None


def normalize(raw: str | None, region: str = "RU") -> Phone:
    """Classify and normalise a raw number (``8 (916) 111-00-01`` -> ``+79161110001``)."""
    text = (raw or "").strip()
    if not text or text.lower() in _ANONYMOUS:
        return Phone(text, PhoneKind.ANONYMOUS, None)
    if len(text) > _MAX_RAW:
        return Phone(text[:_MAX_RAW], PhoneKind.INVALID, None)
    if _EXTENSION_RE.match(text):
        return Phone(text, PhoneKind.EXTENSION, text)
    digits = re.sub(r"[\s\-().]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    try:
        parsed = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return Phone(text, PhoneKind.INVALID, None)
    if not phonenumbers.is_possible_number(parsed):
        return Phone(text, PhoneKind.INVALID, None)
    return Phone(
        text, PhoneKind.E164, phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    )


def to_e164(raw: str | None, region: str = "RU") -> str | None:
    """The E.164 form of an outside number, or None for extensions, anonymous and garbage."""
    return normalize(raw, region).e164


def display(number: str | None, region: str = "RU") -> str:
    """How a number is written for people: ``+79161110001`` → ``+7 916 111-00-01`` (phonenumbers' international
    format, which follows each country's own grouping); extensions and what does not parse stay as given."""
    text = (number or "").strip()
    phone = normalize(text, region)
    if phone.kind is not PhoneKind.E164 or phone.value is None:
        return text
    parsed = phonenumbers.parse(phone.value, region)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
