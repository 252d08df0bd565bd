"""Card cache invalidation across the cluster: each node's committed changes reach every other node's cache.

Redis pub/sub on ``<stream>:cards``: a node publishes what each of its commits changed (numbers and parties of
calls, or "every card" for a CRM write) and forgets it in its own cache at once; every other node forgets the
same. Pub/sub keeps nothing for a node that is away, so a node whose subscription is not up does not use its
cache (``CardCache.distrust``) and starts from an empty one when it is back. A node killed between its commit and
its publish announces nothing: each change also moves the store's card epoch in its own commit, and every node
forgets all its cards when an epoch stays unannounced (``EpochLedger``, read by ``follow_card_epoch``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from crmtel.push.cardcache import CardCache, EpochLedger
from crmtel.store.changes import StoreChange

log = structlog.get_logger(__name__)

_SEP = b"\x00"


class CardInvalidations:
    """This node's side of the channel: ``publish`` its changes, ``run`` sends them and applies the others'."""

    def __init__(
        self, redis: Redis, channel: str, node: str, cache: CardCache, *, backlog: int = 1000
    ) -> None:
        self._redis = redis
        self.channel = channel
        self._node = node.encode()
        self._cache = cache
        self._pending: deque[StoreChange] = deque()
        self._backlog = backlog
        self._wakeup = asyncio.Event()
        self.subscribed = asyncio.Event()
        # The epochs announced (this node's and the others'): a missing one is a change never announced.
        self.ledger = EpochLedger()
        self.sent = 0
        self.received = 0
        # Besides the card cache, what else keeps a copy of the store in memory and wants the other nodes'
        # changes (the classifier's managers' extensions): told each one received, never published again.
        self._also: list[Callable[[StoreChange], None]] = []

    def also_tell(self, listener: Callable[[StoreChange], None]) -> None:
        """Have ``listener`` told every change another node announced (as this node's own commits are)."""
        self._also.append(listener)

    @property
    def pending(self) -> int:
        """Changes waiting to be sent."""
        return len(self._pending)

    def publish(self, change: StoreChange) -> None:
        """Queue one committed change for the other nodes (a full queue collapses into "every card")."""
        if change.epoch is not None:
            self.ledger.note(change.epoch)
        if len(self._pending) >= self._backlog:
            self._pending.clear()
            change = StoreChange(everything=True, epoch=change.epoch)
        self._pending.append(change)
        self._wakeup.set()

    async def run(self) -> None:
        """Send and receive until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send(), name="cluster.cards.send")
            group.create_task(self._listen(), name="cluster.cards.listen")

    async def _send(self) -> None:
        failures = 0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                message = self._node + _SEP + self._pending[0].to_json().encode()
                try:
                    await self._redis.publish(self.channel, message)
                except (RedisError, OSError) as err:
                    failures += 1
                    if failures == 1 or failures % 60 == 0:
                        log.warning("cluster.cards_unavailable", error=str(err), waiting=len(self._pending))
                    await asyncio.sleep(1.0)
                    continue
                self._pending.popleft()
                self.sent += 1

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Whatever was published while not subscribed is lost: start again from an empty cache.
                self._cache.trust()
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._apply(message.get("data"))
            except (RedisError, OSError) as err:
                log.warning("cluster.cards_channel_lost", error=str(err))
            finally:
                self._cache.distrust()
                self.subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)

    def _apply(self, data: object) -> None:
        if not isinstance(data, bytes):
            return
        node, _, body = data.partition(_SEP)
        if node == self._node:
            return  # applied locally at commit
        self.received += 1
        change = StoreChange.from_json(body)
        if change.epoch is not None:
            self.ledger.note(change.epoch)
        self._cache.forget(change)
        for listener in self._also:
            listener(change)
