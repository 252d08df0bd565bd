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
from crmtel.dial.models import DialAttempt, DialRequest, originate_fields
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
    guarded_settings = OriginateSettings(dial_rules=(DialRule(prefix="+7", replace="8"),), max_per_pbx=2)
    guarded = GuardedSender("pbx1", link, guarded_settings)
    server = RelayServer(redis, {"pbx1": guarded}, lambda: ["pbx1"], prefix=prefix)
    standby = RelayedSender("pbx1", FakePbxLink(), redis, lambda _pbx: False, prefix=prefix)
    task = asyncio.create_task(server.run())

    def originate(number: str, exten: str) -> list[tuple[str, str]]:
        return originate_fields(DialRequest("crmtel-x", "pbx1", "101", number, exten), guarded_settings)

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


class AuditLog:
    def __init__(self) -> None:
        self.rows: list[DialAttempt] = []

    async def add(self, attempt: DialAttempt) -> None:
        self.rows.append(attempt)


async def test_a_forged_relayed_originate_of_any_other_shape_is_refused_and_audited(redis: Redis) -> None:
    """The relay's Redis list is writable by every node: a request with a valid Exten and number but a trunk or
    Local/ channel, another context, an Application, an extra variable or a comma-smuggled one never reaches
    the PBX — each is answered ``Response: Error`` and leaves an audit row; crmtel's own shape still goes."""
    prefix = f"crmtel:test:{uuid.uuid4().hex}"
    link = FakePbxLink()
    settings = OriginateSettings()
    audit = AuditLog()
    guarded = GuardedSender("pbx1", link, settings, trunks=("5000",), audit=audit)
    server = RelayServer(redis, {"pbx1": guarded}, lambda: ["pbx1"], prefix=prefix)
    standby = RelayedSender("pbx1", FakePbxLink(), redis, lambda _pbx: False, prefix=prefix)
    task = asyncio.create_task(server.run())
    good = originate_fields(DialRequest("crmtel-x", "pbx1", "101", "+79161110001", "+79161110001"), settings)

    def changed(**headers: str) -> list[tuple[str, str]]:
        fields = [(key, headers.pop(key, value)) for key, value in good]
        return fields + list(headers.items())

    forged = {
        "trunk channel": changed(Channel="PJSIP/+78091234567@trunk"),
        "digits at the trunk": changed(Channel="PJSIP/88091234567"),
        "a trunk named like an extension": changed(Channel="PJSIP/5000"),
        "Local to another context": changed(Channel="Local/+8821612345678@from-internal"),
        "another context": changed(Context="from-internal"),
        "an application": changed(Application="Dial", Data="PJSIP/88091234567@trunk,60"),
        "a foreign variable": [*good, ("Variable", "AGI_TARGET=+78091234567")],
        "a smuggled variable": [
            (k, v + ",X=1" if v.startswith("CRMTEL_ORIGINATE_ID=") else v) for k, v in good
        ],
        "non-ASCII digits": changed(Channel="PJSIP/1\u0661\u0662"),
    }
    try:
        for label, fields in forged.items():
            reply = await standby.request("Originate", fields, limit=5)
            assert reply[0].get("Response") == "Error", label
            assert "not an Originate crmtel builds" in (reply[0].get("Message") or ""), label
        assert link.sent == []
        assert len(audit.rows) == len(forged)
        assert {row.decision for row in audit.rows} == {"refused"}
        assert all(row.reason == "dial.guard_refused" and row.detail for row in audit.rows)
        ok = await standby.request("Originate", good, limit=5)
        assert ok[0].get("Response") == "Success"
        assert len(link.sent) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
