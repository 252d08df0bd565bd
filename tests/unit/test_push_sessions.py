"""Login sessions and the brake on password guessing, with a fake clock."""

from __future__ import annotations

from crmtel.push.sessions import LoginThrottle, Sessions


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


def test_throttle_blocks_after_too_many_failures_then_forgives() -> None:
    """Too many failures inside the window block the key; the window passing (or a success) lifts the block."""
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60, clock=clock)
    for _ in range(3):
        assert not throttle.blocked("login:anna", "addr:1")
        throttle.failed("login:anna", "addr:1")
    assert throttle.blocked("login:anna")
    assert throttle.blocked("login:boris", "addr:1")
    assert not throttle.blocked("login:boris", "addr:2")
    clock.now += 61
    assert not throttle.blocked("login:anna", "addr:1")
    throttle.failed("login:anna")
    throttle.succeeded("login:anna")
    assert not throttle.blocked("login:anna")
