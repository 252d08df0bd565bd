"""The login brake with a fake clock: back-off per (login, address), a cap per address, no lockout."""

from __future__ import annotations

import pytest

from crmtel.push.throttle import LoginThrottle, client_address, parse_networks
from tests.unit.test_push_sessions import Clock


def _brake(clock: Clock) -> LoginThrottle:
    return LoginThrottle(free_failures=3, base_delay=1, max_delay=8, max_logins=4, window=600, clock=clock)


def test_failures_beyond_the_free_ones_double_the_wait_up_to_the_bound() -> None:
    """Three failures are free; then 1, 2, 4, 8, 8 … seconds — never a lockout longer than max_delay."""
    clock = Clock()
    brake = _brake(clock)
    waits = []
    for _ in range(8):
        assert brake.wait("anna", "10.0.0.1") == 0
        brake.failed("anna", "10.0.0.1")
        waits.append(brake.wait("anna", "10.0.0.1"))
        clock.now += waits[-1]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]


def test_the_brake_is_per_login_and_address_never_per_login_alone() -> None:
    """Anna braked from one address can log in from another; Boris from the same address is untouched."""
    clock = Clock()
    brake = _brake(clock)
    for _ in range(6):
        brake.failed("anna", "10.0.0.1")
    assert brake.wait("anna", "10.0.0.1") > 0
    assert brake.wait("ANNA", "10.0.0.1") > 0
    assert brake.wait("anna", "10.0.0.2") == 0
    assert brake.wait("boris", "10.0.0.1") == 0


def test_an_address_spraying_many_logins_is_slowed_for_all_of_them() -> None:
    """Past max_logins distinct logins failed from one address, every login from it waits (bounded)."""
    clock = Clock()
    brake = _brake(clock)
    for i in range(5):
        brake.failed(f"user{i}", "10.0.0.9")
    assert 0 < brake.wait("vera", "10.0.0.9") <= 8
    assert brake.wait("vera", "10.0.0.8") == 0
    clock.now += 8
    assert brake.wait("vera", "10.0.0.9") == 0


def test_success_and_time_forgive_and_memory_stays_bounded() -> None:
    """A success resets its pair, the window forgets old failures, and the tables never exceed max_entries."""
    clock = Clock()
    brake = LoginThrottle(free_failures=1, window=60, max_entries=100, clock=clock)
    brake.failed("anna", "a")
    brake.failed("anna", "a")
    assert brake.wait("anna", "a") > 0
    brake.succeeded("anna", "a")
    assert brake.wait("anna", "a") == 0
    brake.failed("boris", "a")
    brake.failed("boris", "a")
    clock.now += 61
    assert brake.wait("boris", "a") == 0
    for i in range(10_000):
        brake.failed(f"u{i}", f"addr{i}")
    # Four tables (pairs, addresses, accounts, known addresses), each at most max_entries long.
    assert len(brake) <= 400


def test_many_addresses_guessing_one_account_are_slowed_but_its_own_addresses_never() -> None:
    """1,000 guesses at Anna from 200 addresses (5 each, under the per-pair brake): past the account's free
    failures every new address waits a doubling delay, bounded by max_delay; the office Anna logged in from
    before is never slowed, and Boris is untouched."""
    clock = Clock()
    brake = LoginThrottle(
        free_failures=5, base_delay=1, max_delay=60, account_free_failures=20, window=900, clock=clock
    )
    brake.succeeded("anna", "203.0.113.10")  # her office, yesterday
    refused = 0
    for i in range(1000):
        address = f"198.51.{i // 5 // 250}.{i // 5 % 250}"
        if brake.wait("anna", address) > 0:
            refused += 1
            continue
        brake.failed("anna", address)
    assert refused > 900
    assert 0 < brake.wait("anna", "192.0.2.77") <= 60
    assert brake.wait("anna", "203.0.113.10") == 0
    assert brake.wait("boris", "198.51.0.1") == 0
    clock.now += 60
    # The owner from a new address gets a try once the bounded wait is over: slowed, never locked out.
    assert brake.wait("anna", "192.0.2.77") == 0


TRUSTED = parse_networks(["127.0.0.1", "10.1.0.0/16"])


@pytest.mark.parametrize(
    ("remote", "xff", "expected"),
    [
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # not from a proxy: the header is the client's own lie
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the left part could be forged
        ("127.0.0.1", "198.51.100.7, 10.1.2.3", "198.51.100.7"),  # a chain of trusted proxies
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_believes_forwarded_for_only_from_trusted_proxies(
    remote: str, xff: str | None, expected: str
) -> None:
    """X-Forwarded-For counts only when the peer is a trusted proxy, and then only its last untrusted hop."""
    assert client_address(remote, xff, TRUSTED) == expected


def test_the_owner_from_a_new_address_gets_in_within_a_minute_while_a_botnet_takes_every_slot() -> None:
    """A simulation, second by second for 15 minutes: 200 addresses guess at Anna every second, so each time the
    account's wait ends one of them is first to take the slot; Anna, from an address she never used, tries
    every 5 s from minute 3 on. She gets her password checked within max_delay (60 s) of her first try — the
    documented bound; before, the botnet took every slot and she waited the whole run. The botnet's guesses
    stay bounded: each of its addresses gets one such try, the rest share the account's slot."""
    clock = Clock()
    brake = LoginThrottle(
        free_failures=5, base_delay=1, max_delay=60, account_free_failures=20, window=900, clock=clock
    )
    bots = [f"198.51.{i // 250}.{i % 250}" for i in range(200)]
    guesses = 0
    first_try: float | None = None
    got_in: float | None = None
    for second in range(15 * 60):
        clock.now = float(second)
        for bot in bots:
            if brake.wait("anna", bot) == 0:
                brake.failed("anna", bot)
                guesses += 1
        if second >= 180 and second % 5 == 0 and got_in is None:
            first_try = clock.now if first_try is None else first_try
            if brake.wait("anna", "192.0.2.77") == 0:
                brake.succeeded("anna", "192.0.2.77")
                got_in = clock.now
    assert first_try is not None
    assert got_in is not None, "Anna never got her password checked"
    assert got_in - first_try <= 60
    # 20 free, one try per address, and the account's slot (at most one a minute once at its bound).
    assert guesses <= 20 + len(bots) + 15 + 7, guesses


def test_one_ipv6_64_is_one_address_for_the_brake() -> None:
    """A host rotating the addresses of its /64 is braked as one address: 2,000 addresses of one /64 guessing
    Anna's password for 10 minutes get no more checked than one IPv4 address would; another /64 is apart."""
    clock = Clock()
    brake = LoginThrottle(clock=clock)
    checked = 0
    for second in range(600):
        clock.now = 1000.0 + second
        for i in range(second % 10 * 200, second % 10 * 200 + 200):
            address = f"2001:db8:1:2::{i + 1:x}"
            if brake.wait("anna", address) <= 0:
                checked += 1
                brake.failed("anna", address)
    assert checked <= 25


def test_the_pair_brake_holds_across_a_64_and_not_beyond_it() -> None:
    """Wrong passwords from one address of a /64 brake the whole /64 for that login, not the next /64."""
    clock = Clock()
    brake = _brake(clock)
    for _ in range(6):
        brake.failed("anna", "2001:db8:1:2::1")
    assert brake.wait("anna", "2001:db8:1:2:ffff:ffff:ffff:ffff") > 0
    assert brake.wait("anna", "2001:db8:1:3::1") == 0
    assert brake.wait("anna", "10.0.0.1") == 0
