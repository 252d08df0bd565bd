"""A brake on password guessing that slows attackers without handing them a way to lock anyone out.

- Back-off per (login, address): the first ``free_failures`` wrong passwords cost nothing; after that every
  attempt for that pair must wait twice as long as the one before (``base_delay`` … ``max_delay``). A
  correct password once the wait is over gets in, and resets the pair.
- A cap per address: an address that has failed against more than ``max_logins`` distinct logins is spraying
  passwords; it gets the same doubling wait for every login it tries, still bounded by ``max_delay``.
- A brake per account against guessing from many addresses (a botnet, 5 guesses each from 200 addresses):
  past ``account_free_failures`` wrong passwords for one login within the window, from whatever addresses,
  every attempt for that login waits the same doubling delay — except from the addresses the login has got
  in from before (the last ``known_addresses`` of each login, remembered for ``known_for`` seconds). So the
  owner at their desk is never slowed, and from a new address waits at most ``max_delay``: slowed, never
  locked out. That bound holds while a botnet takes each slot the moment it opens: an address with no wrong
  password for the login gets its try at most ``max_delay`` after the brake first held it, whatever else the
  account's slot went to. The cost: each address of a botnet gets one such try per ``window`` too; its
  further guesses share the account's slot.
- Apart from that brake nothing is keyed on the login alone; and a wrong password for one login does not
  touch another login from the same address (until the cap).
- The client address comes from ``client_address``: ``X-Forwarded-For`` is believed only when the request
  arrives from a configured trusted proxy (``[web] trusted_proxies``), else every user behind a proxy
  would share one address (and one brake).

Memory is bounded: at most ``max_entries`` pairs and addresses are remembered (oldest forgotten first).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last: float = 0.0
    logins: set[str] = field(default_factory=set)


def _touch(table: OrderedDict[str, _Record], key: str, limit: int) -> _Record:
    record = table.get(key)
    if record is None:
        record = table[key] = _Record()
        while len(table) > limit:
            table.popitem(last=False)
    table.move_to_end(key)
    return record


class LoginThrottle:
    """Decides how long a login attempt must wait; ``wait()`` > 0 means refuse now (429, Retry-After)."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        max_logins: int = 10,
        window: float = 900.0,
        max_entries: int = 10_000,
        account_free_failures: int = 20,
        known_addresses: int = 16,
        known_for: float = 30 * 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free_failures
        self._base = base_delay
        self._max_delay = max_delay
        self._max_logins = max_logins
        self._window = window
        self._limit = max_entries
        self._clock = clock
        self._pairs: OrderedDict[str, _Record] = OrderedDict()
        self._addresses: OrderedDict[str, _Record] = OrderedDict()
        self._accounts: OrderedDict[str, _Record] = OrderedDict()
        self._account_free = account_free_failures
        self._known_count = known_addresses
        self._known_for = known_for
        # login -> the addresses it got in from, and when last.
        self._known: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        # (login, address) with no wrong password yet -> when the account brake first held it.
        self._held: OrderedDict[str, float] = OrderedDict()

    def _delay(self, excess: int) -> float:
        if excess <= 0:
            return 0.0
        return float(min(self._max_delay, self._base * 2 ** min(excess - 1, 30)))

    def _live(self, table: OrderedDict[str, _Record], key: str) -> _Record | None:
        record = table.get(key)
        if record is not None and self._clock() - record.last > self._window:
            del table[key]
            return None
        return record

    def wait(self, login: str, address: str) -> float:
        """Seconds this (login, address) must still wait before its password is even checked; 0 = go ahead."""
        address = braked_as(address)
        now = self._clock()
        waits = [0.0]
        pair = self._live(self._pairs, f"{login.lower()}\x00{address}")
        if pair is not None:
            waits.append(pair.last + self._delay(pair.failures - self._free) - now)
        addr = self._live(self._addresses, address)
        if addr is not None:
            waits.append(addr.last + self._delay(len(addr.logins) - self._max_logins) - now)
        account = self._live(self._accounts, login.lower())
        if account is not None and not self._familiar(login.lower(), address, now):
            wait = account.last + self._delay(account.failures - self._account_free) - now
            if wait > 0 and (pair is None or pair.failures == 0):
                wait = min(
                    wait, self._held_since(f"{login.lower()}\x00{address}", now) + self._max_delay - now
                )
            waits.append(wait)
        return max(waits)

    def _held_since(self, key: str, now: float) -> float:
        """When the account brake first held this (login, address), remembered from now on if it is new."""
        since = self._held.get(key)
        if since is None or now - since > self._window:
            since = self._held[key] = now
            while len(self._held) > self._limit:
                self._held.popitem(last=False)
        return since

    def _familiar(self, login: str, address: str, now: float) -> bool:
        known = self._known.get(login)
        seen = known.get(address) if known is not None else None
        return seen is not None and now - seen <= self._known_for

    def failed(self, login: str, address: str) -> None:
        """Count a wrong password for this login from this address."""
        address = braked_as(address)
        now = self._clock()
        self._held.pop(f"{login.lower()}\x00{address}", None)
        pair = _touch(self._pairs, f"{login.lower()}\x00{address}", self._limit)
        pair.failures += 1
        pair.last = now
        addr = _touch(self._addresses, address, self._limit)
        if len(addr.logins) < self._max_logins + 32:
            # Past the cap the delay is already at its bound; the set need not grow any further.
            addr.logins.add(login.lower())
        addr.last = now
        account = _touch(self._accounts, login.lower(), self._limit)
        account.failures += 1
        account.last = now

    def succeeded(self, login: str, address: str) -> None:
        """Forget the failures of a login that got in from this address, and remember the address as its."""
        address = braked_as(address)
        self._pairs.pop(f"{login.lower()}\x00{address}", None)
        self._held.pop(f"{login.lower()}\x00{address}", None)
        known = self._known.get(login.lower())
        if known is None:
            known = self._known[login.lower()] = OrderedDict()
            while len(self._known) > self._limit:
                self._known.popitem(last=False)
        self._known.move_to_end(login.lower())
        known[address] = self._clock()
        known.move_to_end(address)
        while len(known) > self._known_count:
            known.popitem(last=False)

    def __len__(self) -> int:
        return (
            len(self._pairs) + len(self._addresses) + len(self._accounts) + len(self._known) + len(self._held)
        )


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """``["127.0.0.1", "10.0.0.0/8"]`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def braked_as(address: str) -> str:
    """The address as the brake counts it: an IPv6 address by its /64 — one host or home is given a whole /64
    (RFC 6177) and can ask from any of its 2^64 addresses; keyed apart, each would be a new address."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return address


def client_address(remote: str | None, forwarded_for: str | None, trusted: tuple[IpNetwork, ...]) -> str:
    """Who is really asking: the peer, or — only when the peer is a trusted proxy — the last untrusted hop
    of ``X-Forwarded-For`` (entries further left could have been written by the client itself)."""
    peer = _ip(remote or "")
    if peer is None:
        return remote or "unknown"
    if not forwarded_for or not any(peer in net for net in trusted):
        return str(peer)
    hops = [h for h in forwarded_for.split(",")[-32:] if h.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            # A garbled hop: believe nothing beyond it, the proxy itself is the client then.
            return str(peer)
        if not any(ip in net for net in trusted):
            return str(ip)
    return str(peer)
