"""The outbox's pure parts: staging keys, Standard Webhooks signatures, the rate limit, the backoff."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from crmtel.config import OutboxSettings
from crmtel.connectors.models import Attempt, Kind, OutboxEvent, Verdict
from crmtel.connectors.rate import RateLimit
from crmtel.connectors.service import DeliveryWorker
from crmtel.connectors.staging import stage, stage_all
from crmtel.domain import CallAnswered, CallEnded, CallRecord, CallRinging, Direction, Outcome
from crmtel.webhooks.signing import BadSecret, secret_bytes, sign, verify

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    """The published example (secret, id, timestamp, body) gives the published signature."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    assert verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, f"v1,bogus {expected}")
    assert not verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, expected)


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_YWJj"])
def test_a_secret_that_is_not_whsec_base64_of_16_bytes_is_refused(secret: str) -> None:
    """No prefix, not base64, or too short: refused with a reason."""
    with pytest.raises(BadSecret):
        secret_bytes(secret)


def _record(**changes: object) -> CallRecord:
    values: dict[str, object] = {
        "pbx": "pbx1",
        "linkedid": "1.5",
        "direction": Direction.INBOUND,
        "caller_number": "+79161110001",
        "caller_name": None,
        "dialled": "4951234567",
        "started_at": T0,
        "answered_by": "101",
        "outcome": Outcome.ANSWERED,
        "ended_at": T0 + timedelta(seconds=30),
        "talk_seconds": 25.0,
    }
    values.update(changes)
    return CallRecord(**values)  # type: ignore[arg-type]


def test_keys_come_from_the_pbx_so_the_same_event_seen_again_has_the_same_key() -> None:
    """Ringing keys carry extension and time; an answer its extension; an end only the call."""
    ring = CallRinging("pbx1:1.5", "pbx1", "1.5", "101", Direction.INBOUND, "+7916", None, "495", None, T0)
    (staged,) = stage(ring)
    assert staged.key == f"pbx1:1.5:ringing:101:{T0.isoformat()}"
    assert stage(ring) == [staged]
    (answered,) = stage(CallAnswered("pbx1:1.5", "101", T0))
    assert (answered.pbx, answered.linkedid, answered.key) == ("pbx1", "1.5", "pbx1:1.5:answered:101")


def test_an_end_with_a_recording_stages_the_end_then_the_recording() -> None:
    """The recording is its own effect after the end; without a recording there is none."""
    with_file = stage(CallEnded("pbx1:1.5", _record(recording_file="/x/a.wav"), T0))
    assert [s.kind for s in with_file] == [Kind.ENDED, Kind.RECORDING]
    assert with_file[0].payload["talk_seconds"] == 25.0
    assert with_file[0].payload["started_at"] == T0.isoformat()
    assert [s.kind for s in stage(CallEnded("pbx1:1.5", _record(), T0))] == [Kind.ENDED]


def test_only_the_kinds_a_connector_wants_are_staged() -> None:
    """A subscription to ``ended`` gets no ringing."""
    ring = CallRinging("pbx1:1.5", "pbx1", "1.5", "101", Direction.INBOUND, None, None, None, None, T0)
    staged = stage_all([ring, CallEnded("pbx1:1.5", _record(), T0)], frozenset({Kind.ENDED}))
    assert [s.kind for s in staged] == [Kind.ENDED]


async def test_the_rate_limit_never_lets_more_than_the_rate_into_any_second() -> None:
    """7 per second without a burst: each request 1/7 s after the one before (5 % margin), so never 8 in a
    second whichever second one looks at."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limit = RateLimit(7.0, clock=lambda: now[0], sleep=sleep)
    sent = []
    for _ in range(30):
        await limit.acquire()
        sent.append(now[0])
    for i in range(len(sent) - 7):
        assert sent[i + 7] - sent[i] >= 1.0, i
    assert sent[7] == pytest.approx(1.05)
    slow = RateLimit(0.5, clock=lambda: now[0], sleep=sleep)
    start = now[0]
    await slow.acquire()
    await slow.acquire()
    assert now[0] - start == pytest.approx(2.1)


async def test_a_burst_goes_at_once_and_then_the_rate_holds_like_bitrix24s_leaky_bucket() -> None:
    """2/s with a burst of 50: fifty at once, then one every 0.525 s; after a quiet minute the burst again;
    no 1-second window ever holds more than the bucket can take (50 + 2 per second)."""
    now = [100.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limit = RateLimit(2.0, 50, clock=lambda: now[0], sleep=sleep)
    sent = []
    for _ in range(70):
        await limit.acquire()
        sent.append(now[0])
    assert sent[:50] == [100.0] * 50
    assert [round(b - a, 6) for a, b in itertools.pairwise(sent[49:])] == [0.525] * 20
    now[0] += 60.0
    start = now[0]
    for _ in range(50):
        await limit.acquire()
    assert now[0] == start
    await limit.acquire()
    assert now[0] == pytest.approx(start + 0.525)


class _NoSink:
    name = "x"
    kinds = frozenset(Kind)
    rate_per_second = 1.0
    rate_burst = 1


def _event(attempts: int, age: timedelta) -> OutboxEvent:
    return OutboxEvent(1, "x", "k", "pbx1", "1.5", Kind.ENDED, {}, attempts, T0 - age)


def test_backoff_doubles_to_its_ceiling_honours_retry_after_and_gives_up_after_the_window() -> None:
    """5 s, 10 s … capped at an hour; Retry-After is a floor; past give_up_hours the event fails."""
    settings = OutboxSettings(retry_min_seconds=5, retry_max_seconds=3600, give_up_hours=72)
    worker = DeliveryWorker(_NoSink(), None, settings, node="a")  # type: ignore[arg-type]
    retry = Attempt(Verdict.RETRY, "503")
    for attempts, ceiling in [(0, 5), (1, 10), (3, 40), (20, 3600)]:
        due = worker.next_at(_event(attempts, timedelta(0)), retry, T0)
        assert due is not None
        assert ceiling * 0.8 <= (due - T0).total_seconds() <= ceiling
    slow = Attempt(Verdict.RETRY, "429", retry_after=900)
    due = worker.next_at(_event(0, timedelta(0)), slow, T0)
    assert due is not None
    assert (due - T0).total_seconds() == 900
    assert worker.next_at(_event(40, timedelta(hours=71, minutes=59)), retry, T0) is None
