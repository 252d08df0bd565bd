"""Login sessions, with a fake clock."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from crmtel.push.sessions import DurableSessions, Sessions, token_hash


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_tokens_are_random_and_expire() -> None:
    """Each login gets its own unguessable token; it stops working after the session lifetime."""
    clock = Clock()
    sessions = Sessions(60, clock=clock)
    a, b = sessions.create(1), sessions.create(1)
    assert a != b
    assert len(a) >= 40
    assert sessions.manager_id(a) == 1
    clock.now += 61
    assert sessions.manager_id(a) is None
    assert len(sessions) == 1  # the expired token was forgotten when it was presented


def test_logout_and_unknown_tokens_open_nothing() -> None:
    """A dropped, empty, missing or made-up token maps to no manager; dropping a manager ends all of theirs."""
    sessions = Sessions(60)
    a, b, c = sessions.create(1), sessions.create(1), sessions.create(2)
    sessions.drop(a)
    for token in (a, "", None, "made-up"):
        assert sessions.manager_id(token) is None
    sessions.drop_manager(1)
    assert sessions.manager_id(b) is None
    assert sessions.manager_id(c) == 2


class FakeStore:
    """An in-memory SessionStore that remembers exactly what was handed to it."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, datetime]] = {}

    async def save(self, token_hash: str, manager_id: int, expires_at: datetime, now: datetime) -> None:
        self.rows = {k: v for k, v in self.rows.items() if v[1] > now}
        self.rows[token_hash] = (manager_id, expires_at)

    async def load(self, token_hash: str, now: datetime) -> tuple[int, datetime] | None:
        found = self.rows.get(token_hash)
        return found if found is not None and found[1] > now else None

    async def delete(self, token_hash: str) -> None:
        self.rows.pop(token_hash, None)

    async def delete_manager(self, manager_id: int) -> None:
        self.rows = {k: v for k, v in self.rows.items() if v[0] != manager_id}

    async def alive(self, token_hashes: Collection[str], now: datetime) -> set[str]:
        return {h for h in token_hashes if h in self.rows and self.rows[h][1] > now}


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_sessions_survive_a_restart_and_only_hashes_are_stored() -> None:
    """A token issued before a restart (new in-memory cache, same store) still opens the session; the store
    never sees the token itself."""
    store, wall = FakeStore(), WallClock()
    before = DurableSessions(Sessions(3600), store, 3600, wall_clock=wall)
    token = await before.create(7)
    assert token not in store.rows
    assert list(store.rows) == [token_hash(token)]
    after = DurableSessions(Sessions(3600), store, 3600, wall_clock=wall)
    assert await after.manager_id(token) == 7


async def test_durable_sessions_expire_and_logout_everywhere() -> None:
    """An expired stored session opens nothing; logout and ending a manager's sessions remove them from the store."""
    store, wall = FakeStore(), WallClock()
    sessions = DurableSessions(Sessions(60), store, 60, wall_clock=wall)
    a = await sessions.create(1)
    b = await sessions.create(1)
    c = await sessions.create(2)
    await sessions.drop(a)
    restarted = DurableSessions(Sessions(60), store, 60, wall_clock=wall)
    assert await restarted.manager_id(a) is None
    assert await restarted.manager_id(b) == 1
    await restarted.drop_manager(1)
    assert await DurableSessions(Sessions(60), store, 60, wall_clock=wall).manager_id(b) is None
    wall.now += timedelta(seconds=61)
    assert await DurableSessions(Sessions(60), store, 60, wall_clock=wall).manager_id(c) is None
    for junk in ("", None, "x" * 5000):
        assert await restarted.manager_id(junk) is None


async def test_a_node_learns_of_sessions_ended_elsewhere_and_forgets_them() -> None:
    """Two nodes on one store: a logout on one is found by ``ended`` on the other, whose cache then refuses it."""
    store, wall = FakeStore(), WallClock()
    node_a = DurableSessions(Sessions(3600), store, 3600, wall_clock=wall)
    node_b = DurableSessions(Sessions(3600), store, 3600, wall_clock=wall)
    kept, dropped = await node_a.create(1), await node_a.create(1)
    assert await node_b.manager_id(kept) == 1
    assert await node_b.manager_id(dropped) == 1
    assert await node_b.ended([]) == set()
    await node_a.drop(dropped)
    assert await node_b.ended([]) == {dropped}
    assert await node_b.manager_id(dropped) is None
    assert await node_b.manager_id(kept) == 1
    await node_a.drop_manager(1)
    assert await node_b.ended(["never-issued"]) == {kept, "never-issued"}
    assert await node_b.manager_id(kept) is None
