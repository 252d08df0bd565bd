"""The outbox: a batch taken for a write is put back unless the write completes (errors and cancellation alike)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from crmtel.calls.outbox import Outbox
from crmtel.domain import CallRecord, Direction
from crmtel.errors import StoreUnavailable


def record(linkedid: str, caller: str = "+79161110001") -> CallRecord:
    """A minimal inbound call."""
    return CallRecord(
        pbx="pbx1",
        linkedid=linkedid,
        direction=Direction.INBOUND,
        caller_number=caller,
        caller_name=None,
        dialled="4951234567",
        started_at=datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
    )


async def failing_write(outbox: Outbox, meanwhile: Callable[[], None] = lambda: None) -> None:
    """A write that takes the batch, lets ``meanwhile`` happen (tracking goes on), then fails."""
    async with outbox.taken():
        meanwhile()
        raise StoreUnavailable("database is locked")


async def test_a_batch_whose_write_completes_is_gone() -> None:
    """A write that gets through the ``async with`` leaves nothing pending."""
    outbox = Outbox()
    outbox.ended(("pbx1", "a"), record("a"))
    async with outbox.taken() as batch:
        assert set(batch.ended) == {("pbx1", "a")}
    assert outbox.pending == 0


async def test_a_failed_write_puts_the_batch_back() -> None:
    """A store error inside the write leaves the ended call (and its task-making) pending."""
    outbox = Outbox()
    outbox.ended(("pbx1", "a"), record("a"))
    with pytest.raises(StoreUnavailable):
        await failing_write(outbox)
    async with outbox.taken() as batch:
        assert set(batch.ended) == {("pbx1", "a")}


async def test_a_cancelled_write_puts_the_batch_back() -> None:
    """SIGTERM or a lost lease cancels a write waiting for a locked database: the batch is pending again."""
    outbox = Outbox()
    outbox.ended(("pbx1", "a"), record("a"))
    started = asyncio.Event()

    async def write() -> None:
        async with outbox.taken():
            started.set()
            await asyncio.Event().wait()  # a commit that never comes

    task = asyncio.create_task(write())
    await started.wait()
    assert outbox.pending == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outbox.pending == 1
    async with outbox.taken() as batch:
        assert set(batch.ended) == {("pbx1", "a")}


async def test_newer_versions_taken_meanwhile_win_over_the_put_back_batch() -> None:
    """A call changed while its older version was being written keeps the newer version after a failure."""
    outbox = Outbox()
    old = record("a")
    new = replace(old, caller_name="Иван")
    outbox.changed(("pbx1", "a"), old)

    def meanwhile() -> None:
        outbox.changed(("pbx1", "a"), new)
        outbox.discarded(("pbx1", "b"))

    with pytest.raises(StoreUnavailable):
        await failing_write(outbox, meanwhile)
    async with outbox.taken() as batch:
        assert batch.dirty == {("pbx1", "a"): new}
        assert batch.discarded == {("pbx1", "b")}


async def test_a_call_discarded_meanwhile_does_not_come_back_as_a_row() -> None:
    """A failed Originate discarded while its live row's write failed: the put-back batch does not revive it."""
    outbox = Outbox()
    outbox.changed(("pbx1", "a"), record("a"))
    with pytest.raises(StoreUnavailable):
        await failing_write(outbox, lambda: outbox.discarded(("pbx1", "a")))
    async with outbox.taken() as batch:
        assert batch.dirty == {}
        assert batch.discarded == {("pbx1", "a")}


def test_forget_drops_only_that_pbx() -> None:
    """Another node took a PBX over: its pending calls go, the other PBX's stay."""
    outbox = Outbox()
    outbox.ended(("pbx1", "a"), record("a"))
    outbox.ended(("pbx2", "b"), record("b"))
    outbox.merged("pbx1", "c", "a")
    outbox.forget("pbx1")
    assert outbox.holds(("pbx2", "b"))
    assert not outbox.holds(("pbx1", "a"))
    assert outbox.pending == 1
