"""The health of a running crmtel: the database answers and every PBX is logged in.

Read by ``GET /healthz`` (no login: monitoring and load balancers ask it), so it carries states and ages,
never addresses, user names, secrets or error texts. The reasons go to the log, once per change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from crmtel import __version__
from crmtel.errors import StoreUnavailable

_log = structlog.get_logger("crmtel.health")

# A database slower than this to answer ``SELECT 1`` is reported as unavailable.
DATABASE_TIMEOUT = 2.0
# The state of a PBX another cluster node follows: fine for this node's health.
STANDBY = "standby"


class Pingable(Protocol):
    """The record store (``crmtel.store.db.Database``)."""

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""


class OutboxBacklog(Protocol):
    """One connector's outbox backlog (``crmtel.connectors.models.Backlog``)."""

    @property
    def connector(self) -> str:
        """The connector's name."""
        ...

    @property
    def pending(self) -> int:
        """Events not delivered yet."""
        ...

    @property
    def failed(self) -> int:
        """Events given up."""
        ...

    @property
    def oldest_seconds(self) -> float:
        """Age of the oldest pending event."""
        ...

    @property
    def problem(self) -> str | None:
        """What is wrong with the connector's setup (None: nothing known)."""
        ...


class PbxLink(Protocol):
    """One AMI connection (``crmtel.ami.client.AmiClient``)."""

    @property
    def pbx(self) -> str:
        """The PBX name."""
        ...

    @property
    def state(self) -> str:
        """``connected``, ``login_failed``, ``unreachable`` or ``connecting``."""
        ...

    @property
    def last_event_at(self) -> float | None:
        """``time.monotonic()`` of the last event read."""
        ...


class ClusterView(Protocol):
    """This node's place in a cluster (``crmtel.cluster.service.ClusterNode``)."""

    @property
    def name(self) -> str:
        """The node's name."""
        ...

    def leads(self) -> list[str]:
        """The PBXs this node follows right now."""
        ...

    @property
    def fanout_connected(self) -> bool:
        """Whether the live-event stream (Redis) answers."""
        ...


@dataclass(frozen=True, slots=True)
class PbxHealth:
    """One PBX as /healthz shows it."""

    connected: bool
    state: str
    last_event_age_s: float | None


@dataclass(frozen=True, slots=True)
class Health:
    """The whole report; ``healthy`` decides 200 or 503."""

    database: str
    pbx: dict[str, PbxHealth]
    version: str = __version__
    # In a cluster: this node, the PBXs it leads (the others are followed by another node: "standby"),
    # and whether the live-event stream answers.
    node: str | None = None
    leads: tuple[str, ...] | None = None
    fanout: str | None = None
    # The connectors' outbox: per connector, events pending and failed, and the oldest pending one's age.
    outbox: tuple[OutboxBacklog, ...] = ()

    @property
    def healthy(self) -> bool:
        """The database answers, every PBX this node follows is logged in, and a cluster's stream answers."""
        followed = all(p.connected for p in self.pbx.values() if p.state != STANDBY)
        return self.database == "ok" and followed and self.fanout in (None, "ok")

    def as_json(self) -> dict[str, object]:
        """The JSON body of /healthz."""
        return {
            "status": "ok" if self.healthy else "unhealthy",
            "version": self.version,
            "database": self.database,
            "pbx": {
                name: {
                    "connected": p.connected,
                    "state": p.state,
                    "last_event_age_s": p.last_event_age_s,
                }
                for name, p in self.pbx.items()
            },
            **(
                {}
                if self.node is None
                else {"node": self.node, "leads": list(self.leads or ()), "fanout": self.fanout}
            ),
            **(
                {}
                if not self.outbox
                else {
                    "outbox": {
                        b.connector: {
                            "pending": b.pending,
                            "failed": b.failed,
                            "oldest_pending_s": round(b.oldest_seconds, 1),
                            **({} if b.problem is None else {"problem": b.problem}),
                        }
                        for b in self.outbox
                    }
                }
            ),
        }


class HealthCheck:
    """Asks the database and reads the AMI clients' state on every call."""

    def __init__(
        self,
        database: Pingable,
        links: Sequence[PbxLink],
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = DATABASE_TIMEOUT,
        cluster: ClusterView | None = None,
        outbox: Callable[[], Sequence[OutboxBacklog]] | None = None,
    ) -> None:
        self._outbox = outbox
        self._database = database
        self._links = tuple(links)
        self._cluster = cluster
        self._clock = clock
        self._timeout = timeout
        self._last: dict[str, str] = {}
        self._reason = ""

    async def check(self) -> Health:
        """The current health (the database is asked, with a time limit)."""
        database = await self._database_state()
        now = self._clock()
        leads = None if self._cluster is None else tuple(self._cluster.leads())
        pbx = {
            link.pbx: PbxHealth(
                connected=link.state == "connected",
                state=STANDBY if leads is not None and link.pbx not in leads else link.state,
                last_event_age_s=None if link.last_event_at is None else round(now - link.last_event_at, 1),
            )
            for link in self._links
        }
        outbox = tuple(self._outbox()) if self._outbox is not None else ()
        if self._cluster is None:
            health = Health(database, pbx, outbox=outbox)
        else:
            fanout = "ok" if self._cluster.fanout_connected else "unavailable"
            health = Health(database, pbx, node=self._cluster.name, leads=leads, fanout=fanout, outbox=outbox)
        self._note({"database": database, **{f"pbx.{k}": v.state for k, v in pbx.items()}})
        return health

    async def _database_state(self) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await self._database.ping()
        except TimeoutError:
            self._reason = f"no answer within {self._timeout} s"
            return "unavailable"
        except StoreUnavailable as err:
            self._reason = str(err)
            return "unavailable"
        return "ok"

    def _note(self, states: dict[str, str]) -> None:
        # A load balancer asks every few seconds: log what changed, not every answer.
        for key, value in states.items():
            if self._last.get(key, "ok" if key == "database" else "connected") != value:
                if key == "database" and value != "ok":
                    _log.warning("health.changed", part=key, state=value, reason=self._reason)
                else:
                    _log.info("health.changed", part=key, state=value)
        self._last = states
