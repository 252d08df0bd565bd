"""The login brake over real HTTP: attackers are slowed, nobody is locked out (issue 13)."""

from __future__ import annotations

import asyncio

import aiohttp

from crmtel.store.db import Database
from tests.integration.test_web_app import PASSWORD, running_app


async def _login(session: aiohttp.ClientSession, login: str, password: str, via: str | None = None) -> int:
    headers = {"X-Forwarded-For": via} if via else {}
    async with session.post("/api/login", json={"login": login, "password": password}, headers=headers) as r:
        await r.read()
        return r.status


async def test_guessing_one_login_never_locks_out_others_or_other_addresses(db: Database) -> None:
    """Anna guessed from one address gets 429; Boris from that address and Anna from another still get in."""
    async with running_app(db, trusted_proxies=("127.0.0.1",)) as rig, rig.browser() as s:
        attacker, office = "198.51.100.66", "203.0.113.10"
        for _ in range(6):
            assert await _login(s, "anna", "guess", attacker) == 401
        assert await _login(s, "anna", PASSWORD, attacker) == 429
        assert await _login(s, "boris", PASSWORD, attacker) == 200
        assert await _login(s, "anna", PASSWORD, office) == 200


async def test_after_the_wait_the_right_password_gets_in(db: Database) -> None:
    """The brake is a delay, not a lockout: once Retry-After has passed, the right password works."""
    async with running_app(db) as rig, rig.browser() as s:
        for _ in range(6):
            assert await _login(s, "vera", "guess") == 401
        async with s.post("/api/login", json={"login": "vera", "password": PASSWORD}) as r:
            assert r.status == 429
            retry = int(r.headers["Retry-After"])
        assert retry == 1
        await asyncio.sleep(retry + 0.1)
        assert await _login(s, "vera", PASSWORD) == 200


async def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_brake(db: Database) -> None:
    """Without trusted proxies a client cannot claim a fresh address per guess in X-Forwarded-For."""
    async with running_app(db) as rig, rig.browser() as s:
        for i in range(6):
            assert await _login(s, "anna", "guess", f"192.0.2.{i}") == 401
        assert await _login(s, "anna", "guess", "192.0.2.200") == 429


async def test_an_address_spraying_many_logins_is_slowed_for_every_login(db: Database) -> None:
    """Wrong passwords for more than ten distinct logins from one address brake that address, not others."""
    async with running_app(db, trusted_proxies=("127.0.0.0/8",)) as rig, rig.browser() as s:
        sprayer = "198.51.100.99"
        for i in range(11):
            assert await _login(s, f"user{i}", "guess", sprayer) == 401
        assert await _login(s, "head", PASSWORD, sprayer) == 429
        assert await _login(s, "head", PASSWORD, "198.51.100.100") == 200
