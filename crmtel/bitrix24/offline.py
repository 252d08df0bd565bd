"""Bitrix24's events without a public address: crmtel asks for them (``event.offline.get``) instead of being posted.

The application binds ``ONEXTERNALCALLSTART`` as an offline event once; then, every ``offline_poll_seconds``,
it takes up to 50 queued events with ``clear=0`` (so a crash before they are handled loses none: they stay
hidden under the ``process_id`` and are asked for again with it), handles each exactly as the posted event
(``EventHandler.click_to_call``: finish the CALL_ID Bitrix24 registered, never register again), then deletes the
handled ones (``event.offline.clear``) and marks those that can never be handled (``event.offline.error``).
Errors are logged and the poll backs off (doubling, up to ``MAX_BACKOFF``); a full page is followed at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from crmtel.bitrix24.client import B24Error, Bitrix24Client
from crmtel.bitrix24.service import NAME
from crmtel.bitrix24.web import EventHandler
from crmtel.errors import CrmtelError
from crmtel.store.outbox import load_memo, save_memo

_log = structlog.get_logger("crmtel.bitrix24")

EVENT = "ONEXTERNALCALLSTART"
# The poller's own memo row (connector_calls: pbx column): the process_id of a batch not wholly handled.
_POLLER = "~offline"
PAGE = 50
MAX_BACKOFF = 300.0


def _event_data(entry: Mapping[str, Any]) -> dict[str, str]:
    data = entry.get("EVENT_DATA")
    if not isinstance(data, Mapping):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str | int)}


class OfflineEvents:
    """Polls the portal's offline event queue (an owned task: ``run`` until cancelled)."""

    def __init__(self, client: Bitrix24Client, handler: EventHandler, *, interval: float) -> None:
        self.client = client
        self.handler = handler
        self.interval = interval
        self.bound = False
        # A batch taken but not wholly handled: asked for again under its process_id. Kept in the store too:
        # the portal hides a taken batch from every other request, so a crmtel killed mid-batch must ask again.
        self.process_id: str | None = None
        self._restored = False
        self.handled = 0
        self.polls = 0

    async def bind(self) -> None:
        """Have the portal queue ONEXTERNALCALLSTART for us (once; "already bound" is fine)."""
        try:
            await self.client.call("event.bind", {"event": EVENT, "event_type": "offline"})
        except B24Error as err:
            if "already" not in err.description.lower():
                raise
        self.bound = True
        _log.info("bitrix24.offline_bound", event_name=EVENT)

    async def poll(self) -> int:
        """One page of the queue handled; how many entries it held."""
        if not self.bound:
            await self.bind()
        if not self._restored:
            self.process_id = (await load_memo(self.handler.db, NAME, _POLLER, "process")).get("process_id")
            self._restored = True
        params: dict[str, Any] = {"filter": {"=EVENT_NAME": EVENT}, "clear": 0, "limit": PAGE}
        if self.process_id:
            params["process_id"] = self.process_id
        self.polls += 1
        result = await self.client.call("event.offline.get", params)
        if not isinstance(result, Mapping):
            raise B24Error(200, "ERROR_UNEXPECTED_ANSWER", "event.offline.get answered without an object")
        entries = [e for e in result.get("events") or [] if isinstance(e, Mapping)]
        process_id = str(result.get("process_id") or "")
        if not entries or not process_id:
            if self.process_id is not None:
                await self._keep(None)
            return len(entries)
        if process_id != self.process_id:
            await self._keep(process_id)
        done: list[str] = []
        broken: list[str] = []
        later = 0
        for entry in entries:
            message = str(entry.get("MESSAGE_ID") or entry.get("ID") or "")
            if str(entry.get("EVENT_NAME", "")).upper() != EVENT:
                done.append(message)  # not ours to handle: nothing waits for it
                continue
            status, body = await self.handler.click_to_call(_event_data(entry))
            if status == 200:
                done.append(message)
                self.handled += 1
            elif status == 400:
                _log.warning("bitrix24.offline_event_unusable", message_id=message, answer=str(body)[:200])
                broken.append(message)
            else:
                later += 1  # crmtel cannot dial now: kept under the process_id, asked for again
        if done:
            await self.client.call("event.offline.clear", {"process_id": process_id, "message_id": done})
        if broken:
            await self.client.call("event.offline.error", {"process_id": process_id, "message_id": broken})
        await self._keep(process_id if later else None)
        return len(entries)

    async def _keep(self, process_id: str | None) -> None:
        self.process_id = process_id
        await save_memo(
            self.handler.db, NAME, _POLLER, "process", {"process_id": process_id}, datetime.now(UTC)
        )

    async def run(self) -> None:
        """Poll until cancelled: every ``interval`` seconds, at once after a full page, backing off on errors."""
        delay = self.interval
        while True:
            try:
                if await self.client.tokens.load() is None:
                    # No authorization yet (`crmtel bitrix24 authorize CODE`): look again later.
                    count = 0
                else:
                    count = await self.poll()
                delay = 0.0 if count >= PAGE else self.interval
            except B24Error as err:
                delay = min(max(delay, self.interval) * 2, MAX_BACKOFF)
                _log.warning(
                    "bitrix24.offline_poll_failed",
                    code=err.code,
                    status=err.status,
                    error=err.description[:200],
                    retry_in_s=delay,
                )
            except CrmtelError as err:  # the store is away
                delay = min(max(delay, self.interval) * 2, MAX_BACKOFF)
                _log.warning("bitrix24.offline_poll_failed", error=str(err)[:200], retry_in_s=delay)
            except Exception:  # noqa: BLE001
                # A bug must not stop the polling for good; it is logged with its traceback.
                delay = min(max(delay, self.interval) * 2, MAX_BACKOFF)
                _log.exception("bitrix24.offline_poll_error", retry_in_s=delay)
            await asyncio.sleep(delay)
