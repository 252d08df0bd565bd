"""The click-to-call policy: which numbers a Russian team may call by default, what config widens, and the
sliding windows that bound attempts per manager and per PBX."""

from __future__ import annotations

import pytest

from crmtel.config import OriginateSettings
from crmtel.dial.policy import DialLimits, SlidingWindow, check_number
from crmtel.phones import PhoneKind, is_extension, normalize

DEFAULTS = OriginateSettings()


def _verdict(raw: str, settings: OriginateSettings = DEFAULTS) -> str | None:
    phone = normalize(raw, "RU")
    verdict = check_number(phone.value or raw, phone.kind, settings)
    return verdict.key if verdict is not None else None


@pytest.mark.parametrize(
    "raw", ["+7 916 111-00-01", "8 (495) 123-45-67", "8 800 555-35-35", "+7 812 000-11-22", "205"]
)
def test_russian_numbers_and_extensions_are_allowed_by_default(raw: str) -> None:
    """Mobiles, landlines, 8-800 and ordinary extensions may be called as shipped."""
    assert _verdict(raw) is None


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+7 809 505-12-34", "dial.number_denied"),  # premium
        ("8 809 505 12 34", "dial.number_denied"),
        ("8 803 100-00-00", "dial.number_denied"),
        ("+882 1234 5678", "dial.number_not_allowed"),  # satellite / international networks
        ("+881 6 3123 4567", "dial.number_not_allowed"),
        ("8 10 1 202 555 0123", "dial.number_not_allowed"),  # the Russian way abroad
        ("00 44 20 7946 0000", "dial.number_not_allowed"),
        ("+44 20 7946 0000", "dial.number_not_allowed"),
        ("+7 701 123 45 67", "dial.number_not_allowed"),  # Kazakhstan shares +7
        ("+7 840 222-12-34", "dial.number_denied"),  # Abkhazia shares +7 too, at international rates
        ("8 840 222 12 34", "dial.number_denied"),
        ("+7 940 712-34-56", "dial.number_denied"),  # Abkhazian mobiles
        ("8 940 912 34 56", "dial.number_denied"),
        ("112", "dial.number_denied"),
        ("00", "dial.number_denied"),
        ("01", "dial.number_denied"),
        ("103", "dial.number_denied"),
    ],
)
def test_premium_satellite_foreign_and_service_numbers_are_refused_by_default(raw: str, key: str) -> None:
    """The toll-fraud targets: each refused with the reason's catalogue key."""
    assert _verdict(raw) == key


def test_an_admin_widens_the_patterns() -> None:
    """allow/deny are the admin's: the UK and extension 103 become callable, premium stays barred."""
    wide = OriginateSettings(
        allow=("+7[3489]?????????", "+44*"), deny_extensions=("0*", "112"), deny=("+7809*",)
    )
    assert _verdict("+44 20 7946 0000", wide) is None
    assert _verdict("103", wide) is None
    assert _verdict("8 809 505 12 34", wide) == "dial.number_denied"
    assert _verdict("+882 1234 5678", wide) == "dial.number_not_allowed"


def test_abkhazia_is_callable_once_the_admin_lifts_its_deny_patterns() -> None:
    """+7 840 / +7 940 pass the default allow pattern (they look Russian): only the deny patterns stop them, and
    an admin who drops those may call Abkhazia while premium stays barred."""
    lifted = OriginateSettings(deny=("+7803*", "+7809*"))
    assert _verdict("+7 840 222-12-34", lifted) is None
    assert _verdict("+7 940 712-34-56", lifted) is None
    assert _verdict("+7 809 505-12-34", lifted) == "dial.number_denied"


def test_abkhazia_is_not_told_apart_by_phonenumbers() -> None:
    """Why a prefix and not the number's region: phonenumbers files +7 840 / +7 940 under RU. Should a later
    release give them a region of their own, this fails and the region may replace the prefixes."""
    import phonenumbers

    for raw in ("+78402221234", "+79407123456"):
        assert phonenumbers.region_code_for_number(phonenumbers.parse(raw)) == "RU"


def test_a_pattern_that_is_not_a_number_pattern_is_a_config_error() -> None:
    """Letters or spaces in a pattern are refused when the config is loaded."""
    with pytest.raises(ValueError, match="allow"):
        OriginateSettings(allow=("+7 916*",))


def test_sliding_window_allows_the_limit_then_says_how_long_to_wait() -> None:
    """Three per 10 s: the fourth waits until the first leaves the window."""
    window = SlidingWindow(3, 10.0)
    assert [window.take("a", t) for t in (0.0, 1.0, 2.0)] == [0.0, 0.0, 0.0]
    assert window.take("a", 3.0) == pytest.approx(7.0)
    assert window.take("b", 3.0) == 0.0
    assert window.take("a", 10.0) == 0.0


def test_sliding_window_memory_is_bounded_by_keys() -> None:
    """A script inventing keys cannot grow the table past max_keys."""
    window = SlidingWindow(1, 60.0, max_keys=100)
    for i in range(10_000):
        window.take(f"k{i}", 0.0)
    assert len(window._times) == 100


def test_limits_refuse_per_manager_first_and_per_pbx_for_everyone() -> None:
    """A manager past their own limit is refused without using the PBX's room; the PBX's limit binds all."""
    limits = DialLimits({"pbx1": OriginateSettings(max_per_manager=2, max_per_pbx=3, rate_seconds=60)})
    assert limits.take("pbx1", "anna", 0.0) is None
    assert limits.take("pbx1", "anna", 0.1) is None
    refusal = limits.take("pbx1", "anna", 0.2)
    assert refusal is not None
    assert (refusal.key, refusal.retry_after) == ("dial.rate_manager", 60)
    assert limits.take("pbx1", "boris", 0.3) is None
    refusal = limits.take("pbx1", "olga", 0.4)
    assert refusal is not None
    assert refusal.key == "dial.rate_pbx"
    refusal = limits.take("pbx1", None, 0.5)  # the CLI counts against the PBX too
    assert refusal is not None
    assert refusal.key == "dial.rate_pbx"


@pytest.mark.parametrize(
    "raw", ["8809", "88095", "880912", "10", "99", "1\u0661\u0662", "\u0661\u0660\u0661"]
)
def test_short_numbers_that_are_not_three_digit_extensions_are_refused_by_default(raw: str) -> None:
    """The shipped dialplan rings exactly 3-digit extensions and sends anything else to the trunk: 2-, 4-,
    5- and 6-digit "extensions" (8809 is 8-809 cut short) and non-ASCII digits never pass as extensions."""
    assert _verdict(raw) in ("dial.number_not_allowed", "dial.bad_number")
    assert check_number(raw, PhoneKind.EXTENSION, DEFAULTS) is not None


def test_the_pbxs_own_extensions_and_a_widened_pattern_may_be_called() -> None:
    """A 4-digit PBX lists its extensions (or widens allow_extensions with its dialplan): those pass."""
    assert _verdict("2001", OriginateSettings(extensions=("2???",))) is None
    assert _verdict("2001", OriginateSettings(allow_extensions=("[1-9]???",))) is None
    assert _verdict("8809", OriginateSettings(extensions=("2???",))) == "dial.number_not_allowed"


def test_non_ascii_digits_are_no_extension() -> None:
    """Arabic-Indic digits look like an extension to str.isdigit and to a Unicode \\d: not to crmtel."""
    assert not is_extension("1\u0661\u0662")
    assert normalize("1\u0661\u0662").kind is not PhoneKind.EXTENSION


def test_the_logs_windows_refuse_until_the_attempt_that_filled_them_leaves() -> None:
    """log_refusal: a window is full while its limit-th newest placed attempt is inside it; the wait named is
    until that attempt leaves; the manager's window is asked first, a script (no manager) has the PBX's only."""
    from datetime import UTC, datetime, timedelta

    from crmtel.dial.policy import LogWindows, log_refusal

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    boris = LogWindows(pbx="office", manager="boris", per_manager=3, per_pbx=60, seconds=60)
    assert log_refusal(boris, None, None, now) is None
    refusal = log_refusal(boris, now - timedelta(seconds=50), None, now)
    assert refusal is not None
    assert (refusal.key, refusal.retry_after) == ("dial.rate_manager", 10)
    assert log_refusal(boris, now - timedelta(seconds=60), None, now) is None  # it has just left
    refusal = log_refusal(boris, now - timedelta(seconds=1), now - timedelta(seconds=30), now)
    assert refusal is not None
    assert (refusal.key, refusal.retry_after) == ("dial.rate_manager", 59)
    refusal = log_refusal(boris, None, now - timedelta(seconds=59.5), now)
    assert refusal is not None
    assert (refusal.key, refusal.retry_after) == ("dial.rate_pbx", 1)
    script = LogWindows(pbx="office", manager=None, per_manager=3, per_pbx=60, seconds=60)
    assert log_refusal(script, now - timedelta(seconds=1), None, now) is None
