"""AMI actions from any node: a click-to-call on a standby reaches the PBX through its leader, over Redis.

Only the leader of a PBX is logged in to it. A node that does not lead the PBX pushes the action onto the PBX's
request list; the leader pops it, sends it on its AMI connection and pushes the reply onto the asker's own
reply key. Requests carry a deadline, so an action nobody took in time is dropped, not sent late.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from crmtel.ami.connection import AmiError
from crmtel.ami.protocol import Message

log = structlog.get_logger(__name__)

# How long an asker waits beyond the action's own limit (Redis round trips, the leader's queue).
SLACK_SECONDS = 2.0


class ActionSender(Protocol):
    """Sends one AMI action and waits for what completes it (``crmtel.ami.client.AmiClient``)."""

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        """The reply and the events that complete it."""
        ...


class RelayError(AmiError):
    """The leader could not send the action (its AMI error), or Redis failed us."""


def _requests_key(prefix: str, pbx: str) -> str:
    return f"{prefix}:{pbx}:requests"


class RelayedSender:
    """An ActionSender for one PBX: direct when this node leads it, else through the leader."""

    def __init__(
        self, pbx: str, local: ActionSender, redis: Redis, leads: Callable[[str], bool], *, prefix: str
    ) -> None:
        self._pbx = pbx
        self._local = local
        self._redis = redis
        self._leads = leads
        self._prefix = prefix

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        """Send on the local connection when leading; otherwise ask the leader and wait for its reply."""
        if self._leads(self._pbx):
            return await self._local.request(name, fields, limit=limit)
        wait = (limit or 10.0) + SLACK_SECONDS
        reply = f"{self._prefix}:reply:{secrets.token_hex(8)}"
        body = {
            "name": name,
            "fields": list(fields),
            "limit": limit,
            "reply": reply,
            "deadline": time.time() + wait,
        }
        try:
            await self._redis.rpush(_requests_key(self._prefix, self._pbx), json.dumps(body))
            answer = await self._redis.blpop([reply], timeout=wait)
        except (RedisError, OSError) as err:
            raise RelayError(f"cannot reach the PBX's leader: {err}") from err
        if answer is None:
            raise TimeoutError(f"no node following {self._pbx} answered within {wait:.0f} s")
        data = json.loads(answer[1])
        if data.get("timeout"):
            raise TimeoutError(data.get("error") or "the PBX did not answer in time")
        if data.get("error") is not None:
            raise RelayError(str(data["error"]))
        return [Message(tuple((str(k), str(v)) for k, v in headers)) for headers in data["messages"]]


class RelayServer:
    """The leader's side: takes the requests for the PBXs it leads and answers each on its reply key."""

    def __init__(
        self,
        redis: Redis,
        senders: Mapping[str, ActionSender],
        leads: Callable[[], list[str]],
        *,
        prefix: str,
    ) -> None:
        self._redis = redis
        self._senders = dict(senders)
        self._leads = leads
        self._prefix = prefix
        self._tasks: set[asyncio.Task[None]] = set()
        self.served = 0

    async def run(self) -> None:
        """Serve until cancelled; the actions in flight are cancelled with it."""
        try:
            while True:
                pbxes = [p for p in self._leads() if p in self._senders]
                if not pbxes:
                    await asyncio.sleep(0.5)
                    continue
                keys = [_requests_key(self._prefix, p) for p in pbxes]
                try:
                    popped = await self._redis.blpop(keys, timeout=1)
                except (RedisError, OSError) as err:
                    log.warning("cluster.relay_unavailable", error=str(err))
                    await asyncio.sleep(1.0)
                    continue
                if popped is None:
                    continue
                key, raw = popped
                name = key.decode() if isinstance(key, bytes) else key
                pbx = name.removeprefix(f"{self._prefix}:").removesuffix(":requests")
                task = asyncio.create_task(self._serve(pbx, raw), name=f"relay-{pbx}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks))

    async def _serve(self, pbx: str, raw: bytes | str) -> None:
        try:
            body: dict[str, Any] = json.loads(raw)
            reply, deadline = str(body["reply"]), float(body["deadline"])
            fields = [(str(k), str(v)) for k, v in body["fields"]]
            name, limit = str(body["name"]), body.get("limit")
        except (ValueError, KeyError, TypeError) as err:
            log.warning("cluster.relay_bad_request", pbx=pbx, error=str(err))
            return
        if time.time() > deadline:
            log.warning("cluster.relay_expired", pbx=pbx, action=name)
            return
        answer: dict[str, Any]
        try:
            messages = await self._senders[pbx].request(name, fields, limit=limit)
            answer = {"messages": [list(m.headers) for m in messages]}
        except TimeoutError:
            answer = {"timeout": True, "error": f"{pbx} did not answer {name} in time"}
        except AmiError as err:
            answer = {"error": str(err)}
        self.served += 1
        try:
            await self._redis.rpush(reply, json.dumps(answer))
            await self._redis.expire(reply, 60)
        except (RedisError, OSError) as err:
            log.warning("cluster.relay_reply_lost", pbx=pbx, error=str(err))
