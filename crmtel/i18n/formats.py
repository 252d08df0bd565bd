"""Locale-aware formats through Babel: dates in a zone, numbers, money, and parsing typed amounts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import (
    NumberFormatError,
    format_currency,
    format_decimal,
    is_currency,
    parse_decimal,
)

Width = Literal["short", "medium", "long"]

# Typed amounts are short; anything longer is garbage, not a number worth parsing.
MAX_AMOUNT_TEXT = 40
# Spaces of every width people (and spreadsheets, and Intl in the browser) put between digit groups.
_GROUP_SPACES = re.compile(r"[ \u00a0\u202f\u2007\u2009\u200a]")
_PLAIN = re.compile(r"-?\d+(?:[.,]\d+)?", re.ASCII)
_GROUPED = re.compile(r"-?\d{1,3}(?:(?P<sep>[.,])\d{3})+(?:(?!(?P=sep))[.,]\d+)?", re.ASCII)
# Digits, one leading minus, group spaces and the two decimal signs: no exponents, NaN or words.
_ALLOWED = re.compile(r"-?[\d \u00a0\u202f\u2007\u2009\u200a.,]+", re.ASCII)


class AmountError(ValueError):
    """A typed amount that is not a number in any form crmtel accepts."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown time zone {name!r}") from err


def check_currency(code: str) -> str:
    """``code`` upper-cased if it is an ISO 4217 currency Babel knows; ValueError otherwise."""
    upper = code.strip().upper()
    if not is_currency(upper):
        raise ValueError(f"unknown currency {code!r} (ISO 4217 code expected, e.g. RUB)")
    return upper


@cache
def babel_locale(lang: str) -> Locale:
    """Babel's locale for a language tag (``ru``, ``en``, ``en-US``); English for an unknown one."""
    try:
        return Locale.parse(lang.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def _aware(value: datetime) -> datetime:
    # The store hands back naive datetimes from SQLite; they are UTC by construction.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_when(value: datetime, lang: str, tz: str, width: Width = "short") -> str:
    """Date and time of ``value`` in zone ``tz``, as the locale writes them (``01.12.2026, 11:03``)."""
    return format_datetime(_aware(value), width, tzinfo=zone(tz), locale=babel_locale(lang))


def format_clock(value: datetime, lang: str, tz: str, width: Width = "short") -> str:
    """The time of day of ``value`` in zone ``tz`` (``11:03`` / ``11:03 AM``)."""
    return format_time(_aware(value), width, tzinfo=zone(tz), locale=babel_locale(lang))


def format_day(value: date, lang: str, width: Width = "medium") -> str:
    """A calendar day as the locale writes it (``1 дек. 2026 г.`` / ``Dec 1, 2026``)."""
    return format_date(value, width, locale=babel_locale(lang))


def format_number(value: int | float | Decimal, lang: str, decimals: int | None = None) -> str:
    """A number with the locale's grouping and decimal sign (``150 000,5``); ``decimals`` fixes the digits."""
    if decimals is None:
        return format_decimal(value, locale=babel_locale(lang))
    pattern = "#,##0" + ("." + "0" * decimals if decimals > 0 else "")
    return format_decimal(value, format=pattern, locale=babel_locale(lang), decimal_quantization=True)


def format_money(value: int | float | Decimal, lang: str, currency: str = "RUB") -> str:
    """An amount in ``currency`` as the locale writes it (``150 000,50 ₽`` / ``RUB 150,000.50``)."""
    return format_currency(value, currency, locale=babel_locale(lang))


def parse_amount(text: str, lang: str) -> Decimal:
    """A typed amount as an exact Decimal: the locale's own form, or any unambiguous common one.

    ``150 000,50`` (space, NBSP or narrow NBSP between groups), ``150000,50`` and ``150000.50`` all give
    ``Decimal('150000.50')``; so does ``150,000.50``. Anything else raises AmountError.
    """
    raw = text.strip()
    if len(raw) > MAX_AMOUNT_TEXT or not _ALLOWED.fullmatch(raw) or not any(c.isdigit() for c in raw):
        raise AmountError("not a number")
    locale = babel_locale(lang)
    try:
        # The locale's own spelling first (Babel knows its group and decimal signs, e.g. NBSP and "," in ru).
        return _finite(parse_decimal(raw, locale=locale, strict=True))
    except (NumberFormatError, InvalidOperation):
        pass
    compact = _GROUP_SPACES.sub("", raw)
    if _PLAIN.fullmatch(compact):
        # A single "," or "." with no grouping is the decimal sign, whatever the locale.
        return _finite(Decimal(compact.replace(",", ".")))
    if _GROUPED.fullmatch(compact):
        # "1,234,567.50" / "1.234.567,50": the first sign groups the thousands, a different last one is decimal.
        group = next(c for c in compact if c in ",.")
        decimal_sign = "." if group == "," else ","
        return _finite(Decimal(compact.replace(group, "").replace(decimal_sign, ".")))
    raise AmountError("not a number")


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise AmountError("not a number")
    return value
