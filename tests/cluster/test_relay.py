"""AMI actions relayed through Redis: a node that does not lead a PBX sends through the node that does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.asyncio import Redis

from crmtel.ami.connection import AmiError
from crmtel.ami.protocol import Message
from crmtel.cluster.relay import RelayedSender, RelayError, RelayServer
from crmtel.config import DialRule, OriginateSettings
from crmtel.dial.guard import GuardedSender
from tests.cluster.conftest import REDIS_URL


class FakePbxLink:
    """The leader's AMI connection: notes each action and answers as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, str]]]] = []
        self.fail: Exception | None = None

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        self.sent.append((name, list(fields)))
        if self.fail is not None:
            raise self.fail
        return [
            Message((("Response", "Success"), ("ActionID", dict(fields).get("ActionID", "")))),
            Message((("Event", "OriginateResponse"), ("Response", "Success"), ("Reason", "4"))),
        ]


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_a_standby_sends_through_the_leader_and_gets_its_reply(redis: Redis) -> None:
    """Originate on a node not leading pbx1 reaches the leader's connection; replies (and errors) come back."""
    prefix = f"crmtel:test:{uuid.uuid4().hex}"
    link = FakePbxLink()
    server = RelayServer(redis, {"pbx1": link}, lambda: ["pbx1"], prefix=prefix)
    standby = RelayedSender("pbx1", FakePbxLink(), redis, lambda _pbx: False, prefix=prefix)
    task = asyncio.create_task(server.run())
    try:
        fields = [("Channel", "PJSIP/101"), ("Exten", "89031234567"), ("ActionID", "crmtel-1")]
        replies = await standby.request("Originate", fields, limit=5)
        assert link.sent == [("Originate", fields)]
        assert [m.get("Response") for m in replies] == ["Success", "Success"]
        assert replies[1].get("Reason") == "4"
        link.fail = AmiError("Originate failed: Extension does not exist")
        with pytest.raises(RelayError, match="Extension does not exist"):
            await standby.request("Originate", fields, limit=5)
        link.fail = TimeoutError()
        with pytest.raises(TimeoutError):
            await standby.request("Originate", fields, limit=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_leader_sends_on_its_own_connection_and_nobody_leading_times_out(redis: Redis) -> None:
    """A leading node never goes through Redis; with no leader at all the asker gives up after limit + slack."""
    prefix = f"crmtel:test:{uuid.uuid4().hex}"
    local = FakePbxLink()
    leader = RelayedSender("pbx1", local, redis, lambda _pbx: True, prefix=prefix)
    await leader.request("Ping", limit=1)
    assert local.sent == [("Ping", [])]
    orphan = RelayedSender("pbx1", FakePbxLink(), redis, lambda _pbx: False, prefix=prefix)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await orphan.request("Ping", limit=0.5)
    assert asyncio.get_running_loop().time() - started < 5
    await redis.delete(f"{prefix}:pbx1:requests")


async def test_a_relayed_originate_passes_the_leaders_click_to_call_policy(redis: Redis) -> None:
    """Another node's Originate (or one forged onto the Redis list) reaches the PBX only within the policy:
    premium numbers, an Exten other than the checked number, and attempts past the PBX's window are refused
    with a PBX-style error, and the leader's connection never sees them."""
    prefix = f"crmtel:test:{uuid.uuid4().hex}"
    link = FakePbxLink()
    guarded = GuardedSender(
        "pbx1", link, OriginateSettings(dial_rules=(DialRule(prefix="+7", replace="8"),), max_per_pbx=2)
    )
    server = RelayServer(redis, {"pbx1": guarded}, lambda: ["pbx1"], prefix=prefix)
    standby = RelayedSender("pbx1", FakePbxLink(), redis, lambda _pbx: False, prefix=prefix)
    task = asyncio.create_task(server.run())

    def originate(number: str, exten: str) -> list[tuple[str, str]]:
        return [("ActionID", "crmtel-x"), ("Exten", exten), ("Variable", f"CRMTEL_DIAL_NUMBER={number}")]

    try:
        premium = await standby.request("Originate", originate("+78095051234", "88095051234"), limit=5)
        assert premium[0].get("Response") == "Error"
        assert "not allowed" in (premium[0].get("Message") or "")
        forged = await standby.request("Originate", originate("+79161110001", "88095051234"), limit=5)
        assert "Exten" in (forged[0].get("Message") or "")
        bare = await standby.request("Originate", [("Exten", "88095051234")], limit=5)
        assert bare[0].get("Response") == "Error"
        assert link.sent == []
        for _ in range(2):
            ok = await standby.request("Originate", originate("+79161110001", "89161110001"), limit=5)
            assert ok[0].get("Response") == "Success"
        third = await standby.request("Originate", originate("+79161110001", "89161110001"), limit=5)
        assert "limit" in (third[0].get("Message") or "")
        assert len(link.sent) == 2
        assert guarded.refused == 4
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
