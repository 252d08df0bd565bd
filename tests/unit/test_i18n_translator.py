"""Translator: messages with CLDR plurals, Babel formats in a zone and currency, typed amounts, negotiation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType

import pytest

from crmtel.i18n import AmountError, Catalogues, Translator, negotiate, parse_amount
from crmtel.i18n.catalogue import Message
from crmtel.i18n.negotiate import accept_language

NBSP = "\u00a0"
NNBSP = "\u202f"


def _translator(lang: str, messages: dict[str, Message]) -> Translator:
    cats = Catalogues(MappingProxyType({lang: MappingProxyType(messages)}))
    return Translator.for_locale(lang, catalogues=cats)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (1, "1 звонок"),
        (2, "2 звонка"),
        (5, "5 звонков"),
        (11, "11 звонков"),
        (21, "21 звонок"),
        (1.5, "1,5 звонка"),
    ],
)
def test_russian_plural_form_follows_cldr(count: float, text: str) -> None:
    """``count`` picks one/few/many/other by Russian CLDR rules (Babel), and is shown in Russian digits."""
    tr = _translator(
        "ru",
        {
            "x.calls": {
                "one": "{count} звонок",
                "few": "{count} звонка",
                "many": "{count} звонков",
                "other": "{count} звонка",
            }
        },
    )
    assert tr.t("x.calls", count=count) == text


def test_english_plural_and_grouped_count() -> None:
    """English has one/other, and a large count is grouped the English way."""
    tr = _translator("en", {"x.calls": {"one": "{count} call", "other": "{count} calls"}})
    assert tr.t("x.calls", count=1) == "1 call"
    assert tr.t("x.calls", count=12345) == "12,345 calls"


def test_params_are_inserted_as_text_and_unknown_keys_come_back_as_themselves() -> None:
    """A param is inserted literally (no format-string tricks); a missing key is visible, not a crash."""
    tr = _translator("ru", {"x.hello": "Привет, {name}! {missing}"})
    assert tr.t("x.hello", name="{0.__class__}") == "Привет, {0.__class__}! {missing}"
    assert tr.t("x.nope") == "x.nope"


def test_unknown_locale_gets_russian_and_region_tags_map_to_their_language() -> None:
    """``de`` falls back to Russian (the default); ``en-US`` and ``EN_gb`` are English."""
    assert Translator.for_locale("de").locale == "ru"
    assert Translator.for_locale(None).locale == "ru"
    assert Translator.for_locale("en-US").locale == "en"
    assert Translator.for_locale("EN_gb").locale == "en"


def test_time_is_shown_in_the_configured_zone() -> None:
    """08:03 UTC is 11:03 in Moscow; a naive value from the store counts as UTC."""
    moment = datetime(2026, 12, 1, 8, 3, 8, tzinfo=UTC)
    ru = Translator.for_locale("ru", zone="Europe/Moscow")
    assert ru.clock(moment) == "11:03"
    assert ru.clock(moment.replace(tzinfo=None)) == "11:03"
    assert ru.when(moment) == "01.12.2026, 11:03"
    en = Translator.for_locale("en", zone="UTC")
    assert en.clock(moment) == "8:03\u202fAM" or en.clock(moment) == "8:03 AM"
    assert en.day(date(2026, 12, 1)) == "Dec 1, 2026"


def test_money_uses_grouping_and_the_configured_currency() -> None:
    """Russian money is ``150 000,50 ₽``; another currency is shown when configured."""
    ru = Translator.for_locale("ru", currency="RUB")
    assert ru.money(Decimal("150000.5")) == f"150{NBSP}000,50{NBSP}₽"
    assert Translator.for_locale("en", currency="EUR").money(Decimal("1234.5")) == "€1,234.50"
    assert ru.number(Decimal("18500"), decimals=2) == f"18{NBSP}500,00"


@pytest.mark.parametrize(
    ("seconds", "ru", "en"),
    [
        (0, "0 с", "0 s"),
        (45.4, "45 с", "45 s"),
        (65, "1 мин 05 с", "1 min 05 s"),
        (600, "10 мин 00 с", "10 min 00 s"),
        (3725, "1 ч 02 мин", "1 h 02 min"),
        (-3, "0 с", "0 s"),
    ],
)
def test_durations_read_naturally(seconds: float, ru: str, en: str) -> None:
    """Talk and ring times read as people say them, in both languages."""
    assert Translator.for_locale("ru").duration(seconds) == ru
    assert Translator.for_locale("en").duration(seconds) == en


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize(
    "text",
    [
        "150 000,50",
        f"150{NBSP}000,50",
        f"150{NNBSP}000,50",
        "150000,50",
        "150000.50",
        "150,000.50",
        "150.000,50",
        " 150000.5 ",
    ],
)
def test_amounts_in_every_common_form_parse_to_the_exact_decimal(lang: str, text: str) -> None:
    """The forms managers type (with any space between groups) all mean 150000.50, exactly."""
    assert parse_amount(text, lang) == Decimal("150000.50")


def test_locale_decides_an_ambiguous_single_separator() -> None:
    """``1,500`` is one and a half in Russian and fifteen hundred in English (each locale's own reading)."""
    assert parse_amount("1,500", "ru") == Decimal("1.500")
    assert parse_amount("1,500", "en") == Decimal("1500")
    assert parse_amount("1 234 567", "ru") == Decimal("1234567")
    assert parse_amount("18500", "ru") == Decimal("18500")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "abc",
        "1e5",
        "NaN",
        "Infinity",
        "1,2,3",
        "12.34.56,7,8",
        "--5",
        "5-",
        "1" * 41,
        "١٢٣",
        "1 000 000,00,00",
    ],
)
def test_garbage_amounts_are_refused(text: str) -> None:
    """Words, exponents, NaN, broken grouping and overlong input are an AmountError, never a number."""
    with pytest.raises(AmountError):
        parse_amount(text, "ru")


def test_accept_language_is_ranked_by_quality() -> None:
    """q-values order the header; q=0 and malformed entries are dropped."""
    assert accept_language("de;q=0.9, en-US;q=0.8, ru;q=0.95") == ["ru", "de", "en-US"]
    assert accept_language("en;q=0, fr;q=abc, ru") == ["ru"]
    assert accept_language(None) == []
    assert accept_language("x" * 100_000) == ["x" * 1000]


@pytest.mark.parametrize(
    ("stored", "header", "expected"),
    [
        ("en", "ru-RU,ru;q=0.9", "en"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "de-DE,en;q=0.5", "en"),
        (None, "de-DE,fr", "ru"),
        (None, None, "ru"),
        ("xx", "en", "en"),
    ],
)
def test_negotiation_prefers_the_stored_choice_then_the_browser_then_russian(
    stored: str | None, header: str | None, expected: str
) -> None:
    """Stored user choice > Accept-Language > ru."""
    assert negotiate(stored, header) == expected
