"""Phone normalisation: every way people write one number becomes one E.164 string."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmtel.phones import PhoneKind, normalize, to_e164


@pytest.mark.parametrize(
    "raw",
    [
        "8 (916) 111-00-01",
        "+7 916 1110001",
        "79161110001",
        "9161110001",
        "+7(916)111-00-01",
        "8-916-111-00-01",
    ],
)
def test_russian_formats_are_one_number(raw: str) -> None:
    """National, international, bare and punctuated forms of one Russian mobile give one E.164 number."""
    assert to_e164(raw) == "+79161110001"


def test_international_prefix_00_is_understood() -> None:
    """00-prefixed international numbers are read as +."""
    assert to_e164("00 44 20 7946 0958") == "+442079460958"


def test_foreign_number_keeps_its_country() -> None:
    """A number with its own country code is not forced into the default region."""
    assert to_e164("+1 650 253 0000") == "+16502530000"


def test_default_region_is_configurable() -> None:
    """A national number is read in the configured region."""
    assert to_e164("020 7946 0958", region="GB") == "+442079460958"


@pytest.mark.parametrize("raw", ["101", "2001", "55"])
def test_short_internal_extensions_are_not_e164(raw: str) -> None:
    """Short all-digit strings are internal extensions, never outside numbers."""
    phone = normalize(raw)
    assert phone.kind is PhoneKind.EXTENSION
    assert phone.value == raw
    assert phone.e164 is None


@pytest.mark.parametrize("raw", ["anonymous", "Anonymous", "", "   ", None, "<unknown>", "restricted"])
def test_hidden_callers_are_anonymous(raw: str | None) -> None:
    """Withheld or empty caller IDs are anonymous, with no number."""
    phone = normalize(raw)
    assert phone.kind is PhoneKind.ANONYMOUS
    assert phone.e164 is None


@pytest.mark.parametrize(
    "raw", ["x" * 200, "1" * 200, "abc", "+", "12345678901234567", "'; DROP TABLE phones;--"]
)
def test_garbage_is_invalid_not_an_error(raw: str) -> None:
    """Garbage of any length is classified invalid, never raising."""
    phone = normalize(raw)
    assert phone.kind is PhoneKind.INVALID
    assert phone.e164 is None
    assert len(phone.raw) <= 64


@given(st.text(max_size=300))
def test_normalize_never_raises(raw: str) -> None:
    """Any string at all normalises to some kind without raising."""
    phone = normalize(raw)
    assert phone.kind in PhoneKind
    if phone.e164 is not None:
        assert phone.e164.startswith("+")
        assert phone.e164[1:].isdigit()
