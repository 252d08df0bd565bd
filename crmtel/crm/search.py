"""What the client list's search finds, as pure functions: folded words and digit runs of a party, and a
query read the way Russian users type it (``8 (916) 777-00-07``, ``+7 916…``, ``Петр`` for ``Пётр``, ``ип``).

A party is indexed as a set of *terms* (``party_terms``): every word of its name, company, contact persons
and e-mail, folded (lower case, ``ё`` → ``е``), its INN, and every run of at least ``MIN_DIGITS`` digits
that ends a phone number's E.164 digits (so ``7770007`` and ``9167770007`` are both found by a prefix
search). A query matches a party when each of its tokens is a prefix of one of the party's terms: one
B-tree range per token, the same SQL on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

# Shorter digit runs than this are not indexed (and a query token of fewer digits is read as a word).
MIN_DIGITS = 4
MAX_TERM = 64
MAX_TOKENS = 6
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# What people put between the digits of a number.
_NUMBER_PUNCT = re.compile(r"[\s\-().+/]")


def visible(text: str) -> str:
    """The text without Unicode format characters (category Cf: zero-width space, soft hyphen, joiners, BOM),
    which pasted names carry unseen: ``Ива\u200bнов`` is ``Иванов``."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def fold(text: str) -> str:
    """Lower case with ``ё`` read as ``е`` (how Russian users search), format characters dropped, spaces
    collapsed."""
    return " ".join(visible(text).casefold().replace("ё", "е").split())


def name_key(name: str) -> str:
    """The sort key of a name: folded, without leading quotes and punctuation (``«Ромашка»`` sorts under Р)."""
    folded = fold(name)
    match = _WORD.search(folded)
    return folded[match.start() :][:300] if match else folded[:300]


def words(text: str | None) -> list[str]:
    """The folded words of a text (letters and digits; punctuation and quotes split them)."""
    if not text:
        return []
    return [w[:MAX_TERM] for w in _WORD.findall(fold(text))]


def digit_runs(e164: str) -> list[str]:
    """Every tail of a number's digits at least ``MIN_DIGITS`` long: ``+79167770007`` → ``79167770007``,
    ``9167770007`` … ``0007``; any run of digits inside the number is a prefix of one of them."""
    digits = "".join(ch for ch in e164 if ch.isdigit())
    return [digits[i:] for i in range(max(0, len(digits) - MIN_DIGITS + 1))]


@dataclass(frozen=True, slots=True)
class PartyText:
    """What a party is found by."""

    name: str
    company: str | None = None
    email: str | None = None
    inn: str | None = None
    phones: tuple[str, ...] = ()
    contact_names: tuple[str, ...] = ()
    contact_emails: tuple[str, ...] = ()


def terms(party: PartyText) -> set[str]:
    """Every term a party is found by (see the module's docstring)."""
    found: set[str] = set()
    for text in (party.name, party.company, party.email, *party.contact_names, *party.contact_emails):
        found.update(words(text))
    if party.inn:
        found.add("".join(ch for ch in party.inn if ch.isdigit())[:MAX_TERM])
    for phone in party.phones:
        found.update(digit_runs(phone))
    found.discard("")
    return found


@dataclass(frozen=True, slots=True)
class Token:
    """One thing the user typed: the term prefixes any of which must match (several for a number that may be
    written with the national prefix: ``8916…`` is also tried as ``7916…``)."""

    prefixes: tuple[str, ...]


def _number_token(digits: str, region: str) -> Token:
    variants = [digits]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    code = str(phonenumbers.country_code_for_region(region) or "")
    national = metadata.national_prefix if metadata is not None else None
    if national and code and digits.startswith(national) and len(digits) > len(national):
        # 8 916 … is +7 916 … in Russia: both spellings are searched, the international one first.
        variants.insert(0, code + digits[len(national) :])
    return Token(tuple(dict.fromkeys(v[:MAX_TERM] for v in variants)))


def parse_query(query: str, region: str = "RU") -> tuple[Token, ...]:
    """The tokens of a search; empty when nothing searchable was typed.

    A query that is a phone number as typed (digits with spaces, brackets, dashes, a leading ``+``) is one
    number token; otherwise each word is a token, digit words of ``MIN_DIGITS`` or more being numbers.
    """
    text = visible(query).strip()[:200]
    compact = _NUMBER_PUNCT.sub("", text)
    if compact.isdigit() and len(compact) >= MIN_DIGITS:
        return (_number_token(compact, region),)
    tokens: list[Token] = []
    for word in words(text)[:MAX_TOKENS]:
        if word.isdigit() and len(word) >= MIN_DIGITS:
            tokens.append(_number_token(word, region))
        else:
            tokens.append(Token((word,)))
    return tuple(tokens)


def prefix_range(prefix: str) -> tuple[str, str]:
    """``[low, high)`` bounds of the strings that start with ``prefix`` (for an index range scan, no LIKE)."""
    return prefix, prefix + "\U0010ffff"


def unique(values: Iterable[str]) -> list[str]:
    """Values in their first order, without repeats."""
    return list(dict.fromkeys(values))
