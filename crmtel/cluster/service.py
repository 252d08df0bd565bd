"""One node of a crmtel cluster: leads the PBXs whose locks it wins, and feeds its browsers from the stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from crmtel.ami.client import AmiClient
from crmtel.calls.service import CallService
from crmtel.cluster.cards import CardInvalidations
from crmtel.cluster.fanout import LocalNotifier, Refreshable, StreamConsumer, StreamPublisher
from crmtel.cluster.fence import EpochFence
from crmtel.cluster.leadership import Leadership
from crmtel.cluster.relay import ActionSender, RelayedSender, RelayServer
from crmtel.config import ClusterSettings
from crmtel.errors import CrmtelError, StoreUnavailable
from crmtel.push.cardcache import CardCache
from crmtel.store.db import Database
from crmtel.store.leases import LeaseRepository

log = structlog.get_logger(__name__)


def session_settings(settings: ClusterSettings) -> dict[str, str]:
    """PostgreSQL settings for a cluster node's pool: a frozen node never holds a lease row locked for long."""
    return {"idle_in_transaction_session_timeout": str(int(settings.session_timeout_seconds * 1000))}


# Connections of a node beside its main pool: the leadership and health pool (2 + 2 overflow).
CONTROL_CONNECTIONS = 4
# The smallest cluster that survives a node's loss with a spare: the connection check plans for it.
PLANNED_NODES = 3


def node_connections(settings: ClusterSettings, pbxes: int) -> int:
    """The most PostgreSQL connections one node opens: its pool, its control pool, one lock per PBX."""
    return settings.pool_size + settings.pool_overflow + CONTROL_CONNECTIONS + pbxes


def connections_problem(settings: ClusterSettings, pbxes: int, server_max: int, reserved: int) -> str | None:
    """Why three such nodes may be refused connections by the server (None when they fit)."""
    per_node = node_connections(settings, pbxes)
    usable = server_max - reserved
    if PLANNED_NODES * per_node <= usable:
        return None
    return (
        f"{PLANNED_NODES} nodes of {per_node} PostgreSQL connections each (cluster pool_size "
        f"{settings.pool_size} + pool_overflow {settings.pool_overflow} + {CONTROL_CONNECTIONS} control + "
        f"{pbxes} PBX lock(s)) exceed the server's {usable} (max_connections {server_max} - {reserved} "
        "reserved): a burst would be refused (HTTP 503); lower [cluster] pool_size/pool_overflow or raise "
        "max_connections"
    )


async def check_connections(db: Database, settings: ClusterSettings, pbxes: int) -> str | None:
    """``connections_problem`` against the server's own limits (None when they fit or cannot be read)."""
    try:
        async with db.session() as session:
            server_max = int((await session.execute(text("SHOW max_connections"))).scalar_one())
            reserved = int((await session.execute(text("SHOW superuser_reserved_connections"))).scalar_one())
    except (StoreUnavailable, ValueError) as err:
        log.warning("cluster.connections_unknown", error=str(err))
        return None
    return connections_problem(settings, pbxes, server_max, reserved)


class ClusterNode:
    """The cluster parts of one node; the composition root spawns ``leaderships``, the publisher and consumer."""

    def __init__(self, settings: ClusterSettings, db: Database) -> None:
        self.settings = settings
        self.name = settings.node()
        self.redis = Redis.from_url(
            settings.redis_url.get_secret_value(), socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self.fence = EpochFence()
        self.leases = LeaseRepository(db)
        self.publisher = StreamPublisher(
            self.redis, settings.stream, self.name, self.fence.epoch, maxlen=settings.stream_maxlen
        )
        self.consumer: StreamConsumer | None = None
        self.leaderships: list[Leadership] = []
        # Set by ``stop``: each term's last writes retry a locked or unreachable store within the budget.
        self.stopping = False
        self._dsn = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)

    def lead(
        self,
        client: AmiClient,
        calls: CallService,
        scoped: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    ) -> Leadership:
        """A leadership of ``client``'s PBX: while it leads, the client runs and the service writes its calls.

        ``scoped`` is the PBX's other work (its CDR passes, its periodic reconcile): it runs only inside a
        term, beside the client, and is cancelled when the term ends, so it never writes for a lost lease.
        """

        async def follow(pbx: str, epoch: int, lost: asyncio.Event) -> None:
            self.fence.hold(pbx, epoch, lost)
            try:
                restored = await calls.restore(pbx)
                log.info("cluster.following", pbx=pbx, node=self.name, epoch=epoch, live_restored=restored)
                async with asyncio.TaskGroup() as group:
                    beside = [
                        group.create_task(work(), name=f"term-{pbx}-{index}")
                        for index, work in enumerate(scoped)
                    ]
                    try:
                        await client.run()
                    finally:
                        for task in beside:
                            task.cancel()
            finally:
                try:
                    # The last writes of this term still carry its epoch. On a stop the lease is still held:
                    # a locked or unreachable database is retried within the stop budget; a lost lease
                    # gets one try (the next leader's writes win anyway).
                    if self.stopping:
                        await calls.write_all()
                    else:
                        await calls.flush()
                except CrmtelError as err:
                    log.warning("cluster.last_flush_failed", pbx=pbx, error=str(err))
                finally:
                    calls.forget(pbx)
                    self.fence.release(pbx)

        leadership = Leadership(
            client.pbx,
            self._dsn,
            self.name,
            self.leases,
            follow,
            poll=self.settings.poll_seconds,
            check=self.settings.poll_seconds,
            session_timeout=self.settings.session_timeout_seconds,
        )
        self.leaderships.append(leadership)
        return leadership

    def stop(self) -> None:
        """crmtel is stopping: every leadership ends its term (after its last writes) and takes no new one."""
        self.stopping = True
        for leadership in self.leaderships:
            leadership.stop()

    async def stopped(self) -> None:
        """Wait until no leadership leads any more (each term's last writes are done)."""
        for leadership in self.leaderships:
            await leadership.off.wait()

    def senders(self, locals_: Mapping[str, ActionSender]) -> dict[str, ActionSender]:
        """Per PBX, what sends its AMI actions (click-to-call) from this node: its own sender (``locals_``)
        while it leads the PBX, else through the leader."""
        relay_prefix = f"{self.settings.stream}:actions"
        return {
            pbx: RelayedSender(pbx, local, self.redis, self._holds, prefix=relay_prefix)
            for pbx, local in locals_.items()
        }

    def relay(self, locals_: Mapping[str, ActionSender]) -> RelayServer:
        """The task that sends other nodes' actions for the PBXs this node leads, through ``locals_`` (the
        same checked senders as this node's own clicks)."""
        relay_prefix = f"{self.settings.stream}:actions"
        return RelayServer(self.redis, locals_, self.leads, prefix=relay_prefix)

    def _holds(self, pbx: str) -> bool:
        return self.fence.epoch(pbx) is not None

    def card_invalidations(self, cache: CardCache) -> CardInvalidations:
        """The channel that carries every node's committed changes to the others' card caches."""
        return CardInvalidations(self.redis, f"{self.settings.stream}:cards", self.name, cache)

    def consume(self, notifier: LocalNotifier, browsers: Refreshable) -> StreamConsumer:
        """The reader that hands every live event of the cluster to this node's notifier."""
        self.consumer = StreamConsumer(self.redis, self.settings.stream, notifier, browsers)
        return self.consumer

    @property
    def fanout_connected(self) -> bool:
        """Whether this node's reader of the stream is connected to Redis."""
        return self.consumer is not None and self.consumer.connected

    def leads(self) -> list[str]:
        """The PBXs this node leads right now."""
        return sorted(lead.pbx for lead in self.leaderships if lead.leading)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self.redis.aclose()
