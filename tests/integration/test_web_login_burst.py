"""Logins that cannot starve the store: no connection held while argon2 checks a password, a bounded queue of
checks answered 429 with Retry-After past its bound, and 503 (never 500) when the store fails under a login."""

from __future__ import annotations

import asyncio

import aiohttp
from sqlalchemy import text

from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository, verify_password
from tests.integration.test_web_app import PASSWORD, running_app, seed_managers


async def _login(session: aiohttp.ClientSession, login: str, password: str) -> tuple[int, str | None]:
    async with session.post("/api/login", json={"login": login, "password": password}) as r:
        await r.read()
        return r.status, r.headers.get("Retry-After")


async def test_no_database_connection_is_held_while_the_password_is_checked(db: Database) -> None:
    """authenticate reads the hash, lets the connection go, then checks: the pool is idle during argon2."""
    await seed_managers(db)
    held: list[int] = []

    async def probe(password_hash: str | None, password: str) -> bool:
        held.append(db.engine.pool.checkedout())  # type: ignore[attr-defined]
        return await asyncio.to_thread(verify_password, password_hash, password)

    repo = ManagerRepository(db)
    anna = await repo.authenticate("anna", PASSWORD, verify=probe)
    assert anna is not None
    assert anna.login == "anna"
    assert await repo.authenticate("anna", "wrong", verify=probe) is None
    assert await repo.authenticate("nobody", PASSWORD, verify=probe) is None
    assert held == [0, 0, 0]


async def test_a_login_burst_past_the_hash_queue_gets_429_with_retry_after_and_never_a_5xx(
    db: Database,
) -> None:
    """One worker and two waiting: 30 logins at once — some get in, the rest are told when to come back."""
    async with running_app(db, login_workers=1, login_queue=2) as rig:
        sessions = [aiohttp.ClientSession(base_url=rig.base) for _ in range(30)]
        try:
            answers = await asyncio.gather(*(_login(s, "anna", PASSWORD) for s in sessions))
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= 3
    assert statuses.count(429) >= 1
    assert all(retry is not None and int(retry) >= 1 for status, retry in answers if status == 429)


async def test_a_store_failure_during_login_is_503_never_500(db: Database) -> None:
    """The managers' table gone from under a running app: /api/login answers 503 store_unavailable."""
    async with running_app(db) as rig, rig.browser() as browser:
        async with db.session() as session:
            await session.execute(text("ALTER TABLE managers RENAME TO managers_away"))
        try:
            async with browser.post("/api/login", json={"login": "anna", "password": PASSWORD}) as r:
                assert r.status == 503
                assert (await r.json())["code"] == "messages.store_unavailable"
        finally:
            async with db.session() as session:
                await session.execute(text("ALTER TABLE managers_away RENAME TO managers"))
