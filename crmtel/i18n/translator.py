"""``Translator``: one locale's messages (with CLDR plurals) and formats, bound to a time zone and currency."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache

from crmtel.i18n.catalogue import DEFAULT_LANGUAGE, LANGUAGES, Catalogues, Message, substitute
from crmtel.i18n.formats import (
    Width,
    babel_locale,
    format_clock,
    format_day,
    format_money,
    format_number,
    format_when,
    parse_amount,
)


@cache
def shipped_catalogues() -> Catalogues:
    """The package's catalogues, read on first use and then kept (they never change while running)."""
    return Catalogues.load()


def supported(lang: str | None) -> str | None:
    """The crmtel language for a tag such as ``ru``, ``en-US`` or ``EN_gb``; None if crmtel lacks it."""
    if not lang:
        return None
    primary = lang.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else None


@dataclass(frozen=True, slots=True)
class Translator:
    """Messages and formats of one language; ``zone`` and ``currency`` are the configured ones."""

    locale: str
    messages: Mapping[str, Message]
    zone: str = "Europe/Moscow"
    currency: str = "RUB"

    @classmethod
    def for_locale(
        cls,
        locale: str | None,
        *,
        zone: str = "Europe/Moscow",
        currency: str = "RUB",
        catalogues: Catalogues | None = None,
    ) -> Translator:
        """The translator for ``locale`` (``ru``, ``en``, ``en-US``…); Russian for anything crmtel lacks."""
        lang = supported(locale) or DEFAULT_LANGUAGE
        source = catalogues or shipped_catalogues()
        return cls(lang, source.language(lang), zone, currency)

    def t(self, key: str, **params: object) -> str:
        """The message ``key`` with its ``{params}``; ``count`` picks the plural form and is shown grouped.

        A key missing from the catalogue comes back as itself, so a slip shows up on screen, never crashes.
        """
        message = self.messages.get(key)
        if message is None:
            return key
        values = {name: self._param(name, value) for name, value in params.items()}
        if isinstance(message, str):
            return substitute(message, values)
        count = params.get("count")
        category = "other"
        if isinstance(count, int | float | Decimal) and not isinstance(count, bool):
            category = babel_locale(self.locale).plural_form(abs(Decimal(str(count))))
        return substitute(message.get(category) or message["other"], values)

    def _param(self, name: str, value: object) -> str:
        if name == "count" and isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return format_number(value, self.locale)
        return str(value)

    def number(self, value: int | float | Decimal, decimals: int | None = None) -> str:
        """A number with this locale's grouping and decimal sign."""
        return format_number(value, self.locale, decimals)

    def money(self, value: int | float | Decimal, currency: str | None = None) -> str:
        """An amount in the configured (or given) currency."""
        return format_money(value, self.locale, currency or self.currency)

    def when(self, value: datetime, width: Width = "short") -> str:
        """Date and time in the configured zone."""
        return format_when(value, self.locale, self.zone, width)

    def clock(self, value: datetime, width: Width = "short") -> str:
        """Time of day in the configured zone."""
        return format_clock(value, self.locale, self.zone, width)

    def day(self, value: date, width: Width = "medium") -> str:
        """A calendar day."""
        return format_day(value, self.locale, width)

    def duration(self, seconds: float) -> str:
        """A duration as people say it: ``45 с``, ``1 мин 05 с``, ``1 ч 02 мин`` (``1 min 05 s``)."""
        total = max(0, round(seconds))
        hours, rest = divmod(total, 3600)
        minutes, secs = divmod(rest, 60)
        if hours:
            return self.t("format.duration_hm", hours=hours, minutes=f"{minutes:02d}")
        if minutes:
            return self.t("format.duration_ms", minutes=minutes, seconds=f"{secs:02d}")
        return self.t("format.duration_s", seconds=secs)

    def amount(self, text: str) -> Decimal:
        """A typed amount in this locale's forms (``150 000,50``) as an exact Decimal; AmountError if not."""
        return parse_amount(text, self.locale)
