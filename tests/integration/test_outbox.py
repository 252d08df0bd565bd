"""The connectors' outbox end to end: recorded traces -> call service -> outbox -> signed webhooks over HTTP."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from crmtel.calls.service import CallService
from crmtel.config import CallsSettings, OutboxSettings, WebhookSettings
from crmtel.connectors.models import Attempt, Verdict
from crmtel.connectors.service import ConnectorService, OutboxTap, utcnow
from crmtel.errors import StoreUnavailable
from crmtel.store.db import Database
from crmtel.store.models import ConnectorCallRow, ConnectorEventRow
from crmtel.store.outbox import OutboxRepository
from crmtel.store.parties import PartyRepository
from crmtel.webhooks.service import WebhookSink
from tests.fixtures.daemon import crmtel_cli, write_config
from tests.fixtures.fake_ami import wait_for, wait_until
from tests.fixtures.traces import BASE_TIME, SCENARIOS, load_expected, load_messages
from tests.fixtures.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"crmtel-test-secret-0123").decode()
FAST = OutboxSettings(
    retry_min_seconds=0.05, retry_max_seconds=0.2, poll_seconds=0.05, backlog_seconds=0.1, lease_seconds=5
)


def _sink(url: str, name: str = "hook") -> WebhookSink:
    return WebhookSink(WebhookSettings(url=url, secret=SECRET, name=name), 1)


async def _drive(service: CallService, scenarios: Sequence[str]) -> None:
    """Feed recorded traces (one after another) through the call service and flush."""
    for i, scenario in enumerate(scenarios):
        for item in load_messages(scenario):
            await service.on_event("pbx1", item.message, BASE_TIME + timedelta(seconds=item.t + 60 * i))
        await service.flush()


async def _rows(db: Database) -> list[ConnectorEventRow]:
    async with db.session() as session:
        return list(
            (await session.execute(select(ConnectorEventRow).order_by(ConnectorEventRow.id))).scalars()
        )


@contextlib.asynccontextmanager
async def _receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(SECRET)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def test_a_trace_stages_its_effects_with_the_rows_and_a_replay_stages_nothing_more(
    db: Database,
) -> None:
    """The answered call stages ringing, answered, ended and recording once; the same events again add nothing."""
    tap = OutboxTap([_sink("http://127.0.0.1:9/hook")])
    service = CallService(db, CallsSettings(), PartyRepository(db), tap=tap)
    await _drive(service, ["direct-answered"])
    rows = await _rows(db)
    assert [r.kind for r in rows] == ["ringing", "answered", "ended", "recording"]
    linkedid = load_expected("direct-answered")["linkedid"]
    assert {r.linkedid for r in rows} == {linkedid}
    ended = next(r for r in rows if r.kind == "ended")
    assert ended.payload["answered_by"] == "101"
    assert ended.payload["outcome"] == "answered"
    # A restarted crmtel that sees the same events again (restore, resync, replay) stages no second copy.
    again = CallService(db, CallsSettings(), PartyRepository(db), tap=tap)
    await _drive(again, ["direct-answered"])
    assert len(await _rows(db)) == 4


class _FailingTap:
    """A tap whose store fails once (the flush's transaction rolls back with the rows)."""

    def __init__(self, inner: OutboxTap) -> None:
        self.inner = inner
        self.failures = 1

    async def write_in(self, session: object, events: Sequence[object]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("injected")
        await self.inner.write_in(session, events)  # type: ignore[arg-type]


async def test_a_failed_flush_keeps_the_events_for_the_next_one(db: Database) -> None:
    """Rows and outbox effects commit together: a failed flush loses neither, the next one writes both."""
    tap = _FailingTap(OutboxTap([_sink("http://127.0.0.1:9/hook")]))
    service = CallService(db, CallsSettings(), PartyRepository(db), tap=tap)
    for item in load_messages("direct-answered"):
        await service.on_event("pbx1", item.message, BASE_TIME + timedelta(seconds=item.t))
    try:
        await service.flush()
    except StoreUnavailable:
        pass
    else:
        raise AssertionError("the injected failure did not happen")
    assert await _rows(db) == []
    await service.flush()
    assert [r.kind for r in await _rows(db)] == ["ringing", "answered", "ended", "recording"]


async def test_every_trace_reaches_a_signing_receiver_once_and_in_order(db: Database) -> None:
    """Every recorded call arrives at the webhook receiver, signatures valid, each event once, in call order."""
    async with _receiver() as receiver:
        sink = _sink(receiver.url)
        async with ConnectorService([sink], OutboxRepository(db), FAST, node="a") as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await _drive(service, SCENARIOS)
            staged = await _rows(db)
            await wait_until(lambda: _all_delivered(db, "hook"), limit=60)
    assert receiver.bad_signatures == 0
    assert len(receiver.accepted) == len(staged)
    assert set(receiver.seen.values()) == {1}
    for scenario in SCENARIOS:
        linkedid = load_expected(scenario)["linkedid"]
        types = receiver.types_of(linkedid)
        assert types.count("call.ended") == 1, scenario
        # In order per call: the end comes after everything that rang, and the recording after the end.
        assert types.index("call.ended") == len([t for t in types if t != "call.recording"]) - 1, scenario


async def _all_delivered(db: Database, connector: str) -> bool:
    states = await OutboxRepository(db).states(connector)
    return set(states) == {"delivered"}


async def test_an_outage_then_5xx_and_429_are_retried_until_delivered_with_the_answers_logged(
    db: Database,
) -> None:
    """Receiver down, then 503 and 429 with Retry-After: everything arrives; the log keeps each answer."""
    receiver = WebhookReceiver(SECRET)
    await receiver.start()
    url = receiver.url
    port = receiver.port
    await receiver.stop()  # the CRM is down before the calls happen
    sink = _sink(url)
    repo = OutboxRepository(db)
    async with ConnectorService([sink], repo, FAST, node="a") as connectors:
        service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
        await _drive(service, ["direct-answered"])
        worker = connectors.workers[0]
        await wait_for(lambda: worker.retried >= 3, limit=60)
        receiver.script = [(503, {}), (429, {"Retry-After": "0.2"})]
        await receiver.start(port)
        try:
            await wait_until(lambda: _all_delivered(db, "hook"), limit=60)
        finally:
            await receiver.stop()
    assert [t for t in receiver.types_of(load_expected("direct-answered")["linkedid"])] == [
        "call.ringing",
        "call.answered",
        "call.ended",
        "call.recording",
    ]
    first = (await _rows(db))[0]
    outcomes = [(outcome, status) for _, _, outcome, status, _ in await repo.log(first.id)]
    assert outcomes[-1] == ("delivered", 204)
    assert ("retry", None) in outcomes  # no answer while it was down
    answers = " ".join(a for *_, a in await repo.log(first.id))
    assert "scripted 503" in answers or "scripted 429" in answers


async def test_a_refused_event_holds_its_call_fails_and_is_delivered_after_a_replay(db: Database) -> None:
    """A 400 fails the event; the call's later events wait; listed as failed; a replay delivers all in order."""
    repo = OutboxRepository(db)
    async with _receiver() as receiver:
        receiver.refuse_types = {"call.answered"}
        sink = _sink(receiver.url)
        async with ConnectorService([sink], repo, FAST, node="a") as connectors:
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=connectors.tap)
            await _drive(service, ["direct-answered"])
            await wait_for(lambda: connectors.workers[0].failed == 1, limit=60)
            failed = await repo.failed()
            assert [f.kind for f in failed] == ["answered"]
            assert "HTTP 400" in (failed[0].last_error or "")
            linkedid = load_expected("direct-answered")["linkedid"]
            assert receiver.types_of(linkedid) == ["call.ringing"]  # ended and recording wait behind it
            await wait_for(lambda: connectors.backlogs()[0].failed == 1, limit=60)
            receiver.refuse_types = set()
            assert await repo.replay(None, utcnow()) == 1
            await wait_until(lambda: _all_delivered(db, "hook"), limit=60)
    assert receiver.types_of(linkedid) == ["call.ringing", "call.answered", "call.ended", "call.recording"]


async def test_an_event_claimed_by_a_killed_node_is_delivered_by_another_after_its_lease(
    db: Database,
) -> None:
    """Node a claims and dies mid-delivery (no settle); node b delivers once the lease ran out, same webhook-id."""
    repo = OutboxRepository(db)
    async with _receiver() as receiver:
        tap = OutboxTap([_sink(receiver.url)])
        service = CallService(db, CallsSettings(), PartyRepository(db), tap=tap)
        await _drive(service, ["direct-answered"])
        claimed = await repo.claim("hook", "a", utcnow(), timedelta(seconds=0.3), 10)
        assert len(claimed) == 1  # only the call's first event is due: the rest wait behind it
        # Node a sent it and was killed before recording the answer.
        sink_a = _sink(receiver.url)
        attempt = await sink_a.deliver(*claimed[0])
        await sink_a.aclose()
        assert attempt.verdict is Verdict.DELIVERED
        assert (
            await repo.claim("hook", "b", utcnow(), timedelta(seconds=5), 10) == []
        )  # a's lease still holds
        async with ConnectorService([_sink(receiver.url)], repo, FAST, node="b"):
            await wait_until(lambda: _all_delivered(db, "hook"), limit=60)
    first = claimed[0][0]
    assert (
        receiver.seen[first.key] == 2
    )  # delivered twice, under one webhook-id: the receiver applied it once
    assert [r.msg_id for r in receiver.accepted].count(first.key) == 1
    assert len(receiver.accepted) == 4


async def test_two_nodes_delivering_one_outbox_send_each_event_once(db: Database) -> None:
    """Two live nodes share the outbox: claims keep them apart, so no event is sent twice."""
    repo = OutboxRepository(db)
    async with _receiver() as receiver:
        async with (
            ConnectorService([_sink(receiver.url)], repo, FAST, node="a") as a,
            ConnectorService([_sink(receiver.url)], repo, FAST, node="b"),
        ):
            service = CallService(db, CallsSettings(), PartyRepository(db), tap=a.tap)
            await _drive(service, SCENARIOS)
            await wait_until(lambda: _all_delivered(db, "hook"), limit=60)
        staged = await _rows(db)
    assert len(receiver.accepted) == len(staged)
    assert set(receiver.seen.values()) == {1}


async def test_the_admin_lists_failed_deliveries_reads_the_log_and_replays_them(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """`crmtel outbox failed` lists a refused event with the CRM's answer, `log` shows it, `replay` requeues it."""
    repo = OutboxRepository(db)
    service = CallService(
        db, CallsSettings(), PartyRepository(db), tap=OutboxTap([_sink("http://127.0.0.1:9/")])
    )
    await _drive(service, ["direct-answered"])
    ((event, _),) = await repo.claim("hook", "a", utcnow(), timedelta(seconds=5), 10)
    refused = Attempt(Verdict.FAILED, 'HTTP 400: {"error":"ERROR_CORE"}', 400)
    assert await repo.settle(event, refused, node="a", now=utcnow(), next_at=None) == "failed"
    config = write_config(tmp_path / "crmtel.toml", {}, database_url=database_url)
    listed = await crmtel_cli("--config", str(config), "outbox", "failed", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{event.id}\thook\tringing\tpbx1:{event.linkedid}" in listed.stdout
    assert "ERROR_CORE" in listed.stdout
    log = await crmtel_cli("--config", str(config), "outbox", "log", str(event.id), cwd=tmp_path)
    assert "#1\tfailed\t400\tHTTP 400" in log.stdout
    replay = await crmtel_cli("--config", str(config), "outbox", "replay", "--all", cwd=tmp_path)
    assert "1 event(s) queued" in replay.stdout
    assert await repo.failed() == []
    assert (await repo.states("hook"))["pending"] == 4


async def test_delivered_events_their_log_and_memos_are_pruned_after_keep_days_and_pending_ones_stay(
    db: Database,
) -> None:
    """The outbox does not grow forever: old deliveries go with their log and memos; undelivered work stays."""
    repo = OutboxRepository(db)
    service = CallService(
        db, CallsSettings(), PartyRepository(db), tap=OutboxTap([_sink("http://127.0.0.1:9/")])
    )
    await _drive(service, ["direct-answered", "queue-abandoned"])
    ((first, _), (second, _)) = await repo.claim("hook", "a", utcnow(), timedelta(seconds=5), 10)
    ok = Attempt(Verdict.DELIVERED, "HTTP 204", 204, memo={"seen": True})
    await repo.settle_many([(first, ok, None)], node="a", now=utcnow())
    await repo.release(second)
    assert await repo.prune(utcnow() - timedelta(days=30)) == 0  # delivered just now: kept
    assert await repo.prune(utcnow() + timedelta(seconds=1)) == 1
    assert len(await repo.log(first.id)) == 0
    states = await repo.states("hook")
    assert states == {"pending": len(await _rows(db))}
    async with db.session() as session:
        memos = (await session.execute(select(ConnectorCallRow))).scalars().all()
    # The first call still has undelivered events (answered, ended …): its memo stays with them.
    assert [(m.linkedid, m.memo) for m in memos] == [(first.linkedid, {"seen": True})]
