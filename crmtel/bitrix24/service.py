"""The Bitrix24 connector as an outbox sink: one telephony call per crmtel call.

Per call: the first ringing phone registers it (``telephony.externalCall.register``, ``EXTERNAL_CALL_ID`` = the
PBX's Linkedid, so a repeat after a crash returns the same CALL_ID) and shows the card; later phones get
``show``, phones that stop ringing ``hide``; the end ``finish``es it by the user who answered with the outcome's
STATUS_CODE and DURATION; the recording is attached (``attachRecord``, the file's content) once it exists. A call
started from Bitrix24 (click-to-call) is already registered there: its CALL_ID is remembered by originate id,
and it is finished, never registered again. What a call learnt (its CALL_ID, that it is finished) is the
outbox's per-call memo, saved with each delivered event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from crmtel.bitrix24 import models
from crmtel.bitrix24.client import B24Error, Bitrix24Client
from crmtel.config import Bitrix24Settings
from crmtel.connectors.models import Attempt, Kind, OutboxEvent, Verdict
from crmtel.recordings import locate
from crmtel.store.db import Database
from crmtel.store.outbox import load_memo, save_memo

_log = structlog.get_logger("crmtel.bitrix24")

NAME = "bitrix24"
# Where a click-to-call's CALL_ID waits for its call (connector_calls: pbx column, originate id as linkedid).
ORIGINATES = "~originate"
# The outbox "PBX" of Bitrix24 click-to-calls crmtel refused to dial (their CALL_ID is the "linkedid").
REFUSED = "~refused"
# A recording larger than this is not sent (Bitrix24's own limit for uploads is far below).
MAX_RECORDING = 50 * 1024 * 1024
_RATE_LIMITED = {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT"}
_TOKEN_TROUBLE = {
    "expired_token",
    "invalid_token",
    "NO_AUTH_FOUND",
    "NOT_INSTALLED",
    "invalid_grant",
    "OAUTH_FAILED",
}
_USERS_TTL = 600.0


class Users:
    """Portal users by internal number (``user.get`` ``UF_PHONE_INNER``), re-read every ten minutes."""

    def __init__(self, client: Bitrix24Client, clock: Any = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._by_inner: dict[str, int] = {}
        self._by_id: dict[int, str] = {}
        self._until = 0.0

    async def _load(self) -> None:
        if self._clock() < self._until:
            return
        by_inner: dict[str, int] = {}
        start = 0
        while True:
            page = await self._client.call("user.get", {"FILTER": {"ACTIVE": True}, "start": start})
            if not isinstance(page, list) or not page:
                break
            for user in page:
                inner = str(user.get("UF_PHONE_INNER") or "").strip()
                if inner and str(user.get("ID", "")).isdigit():
                    by_inner[inner] = int(user["ID"])
            if len(page) < 50:
                break
            start += 50
        self._by_inner = by_inner
        self._by_id = {v: k for k, v in by_inner.items()}
        self._until = self._clock() + _USERS_TTL

    async def user_of(self, extension: str | None) -> int | None:
        """The portal user whose internal number is ``extension``."""
        if not extension:
            return None
        await self._load()
        return self._by_inner.get(extension)

    async def extension_of(self, user_id: int) -> str | None:
        """The internal number of a portal user."""
        await self._load()
        return self._by_id.get(user_id)


def _verdict(err: B24Error) -> Attempt:
    answer = f"HTTP {err.status or '-'} {err.code}: {err.description}"
    if err.status is None or err.code in _RATE_LIMITED or (err.status or 0) >= 500:
        hold = 2.0 if err.code in _RATE_LIMITED else None
        return Attempt(Verdict.RETRY, answer, err.status, retry_after=hold)
    if err.code in _TOKEN_TROUBLE:
        # Waits for a refresh that works, or for the administrator to install the application again.
        return Attempt(Verdict.RETRY, answer, err.status)
    return Attempt(Verdict.FAILED, answer, err.status)


class Bitrix24Sink:
    """Delivers calls into Bitrix24's telephony."""

    def __init__(
        self, settings: Bitrix24Settings, client: Bitrix24Client, db: Database, recordings_dir: Path
    ) -> None:
        self.settings = settings
        self.client = client
        self.users = Users(client)
        self.db = db
        self.recordings_dir = recordings_dir
        # Methods the portal refused as WRONG_AUTH_TYPE (a legacy incoming webhook): a setup to fix, not retried.
        self.refused: set[str] = set()

    @property
    def problem(self) -> str | None:
        """What the administrator must fix (shown in /healthz): methods refused to an incoming webhook."""
        if not self.refused:
            return None
        return (
            f"Bitrix24 refuses {', '.join(sorted(self.refused))} through an incoming webhook (WRONG_AUTH_TYPE): "
            "since 2026-03 calls reach Bitrix24 only from a local application — set [bitrix24] portal, "
            "client_id and client_secret instead of webhook_url"
        )

    @property
    def name(self) -> str:
        """The outbox name."""
        return NAME

    @property
    def kinds(self) -> frozenset[Kind]:
        """Ringing (register/show), ring stopped (hide), the end (finish), the recording (attachRecord)."""
        return frozenset({Kind.RINGING, Kind.RING_STOPPED, Kind.ENDED, Kind.RECORDING})

    @property
    def rate_per_second(self) -> float:
        """The portal's request rate."""
        return self.settings.rate_per_second

    @property
    def rate_burst(self) -> int:
        """Requests the portal takes at once after a quiet time (its leaky bucket)."""
        return self.settings.rate_burst

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    async def deliver(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        """One effect of one call; the CRM's trouble becomes RETRY or FAILED, never an exception."""
        try:
            if event.kind is Kind.RINGING:
                return await self._ringing(event, dict(memo))
            if event.kind is Kind.RING_STOPPED:
                return await self._ring_stopped(event, memo)
            if event.kind is Kind.ENDED:
                return await self._ended(event, dict(memo))
            if event.kind is Kind.RECORDING:
                return await self._recording(event, memo)
        except B24Error as err:
            if err.code == "WRONG_AUTH_TYPE" and err.method.lower() not in self.refused:
                self.refused.add(err.method.lower())
                _log.error("bitrix24.wrong_auth_type", method=err.method, problem=self.problem)
            return _verdict(err)
        return Attempt(Verdict.DELIVERED, f"not for Bitrix24: {event.kind.value}")

    async def _adopted(self, payload: Mapping[str, Any], memo: dict[str, Any]) -> dict[str, Any]:
        """The memo, with the CALL_ID of a call Bitrix24 itself started (click-to-call) if this is one."""
        originate = payload.get("originate_id")
        if "call_id" not in memo and originate:
            started = await load_memo(self.db, NAME, ORIGINATES, str(originate))
            if started.get("call_id"):
                memo = {**memo, "call_id": started["call_id"], "from_bitrix": True}
        return memo

    async def _user_params(self, extension: str | None) -> dict[str, Any]:
        user = await self.users.user_of(extension)
        return {"USER_ID": user if user is not None else self.settings.default_user_id}

    async def _register(self, event: OutboxEvent, payload: Mapping[str, Any], extension: str | None) -> str:
        number = models.client_number(payload)
        kind = models.call_type(str(payload.get("direction")))
        if number is None or kind is None:
            raise B24Error(400, "CRMTEL_NOT_A_CALL", "no outside number or an internal call")
        params: dict[str, Any] = {
            **(await self._user_params(extension)),
            "PHONE_NUMBER": number,
            "TYPE": kind,
            "EXTERNAL_CALL_ID": event.linkedid,
            "SHOW": 1 if self.settings.show_card and event.kind is Kind.RINGING else 0,
        }
        start = payload.get("at") or payload.get("started_at")
        if start:
            params["CALL_START_DATE"] = datetime.fromisoformat(str(start)).isoformat(timespec="seconds")
        line = models.line_number(payload)
        if line:
            params["LINE_NUMBER"] = line
        result = await self.client.call("telephony.externalCall.register", params)
        call_id = result.get("CALL_ID") if isinstance(result, dict) else None
        if not call_id:
            raise B24Error(200, "ERROR_UNEXPECTED_ANSWER", "register answered without a CALL_ID")
        return str(call_id)

    def _skip(self, payload: Mapping[str, Any]) -> str | None:
        if models.call_type(str(payload.get("direction"))) is None:
            return "internal call: not a Bitrix24 telephony call"
        if models.client_number(payload) is None:
            return "no outside number (anonymous caller): nothing to register"
        return None

    async def _ringing(self, event: OutboxEvent, memo: dict[str, Any]) -> Attempt:
        payload = event.payload
        skip = self._skip(payload)
        if skip is not None:
            return Attempt(Verdict.DELIVERED, skip)
        memo = await self._adopted(payload, memo)
        extension = str(payload.get("extension") or "")
        if "call_id" not in memo:
            call_id = await self._register(event, payload, extension)
            return Attempt(Verdict.DELIVERED, f"registered {call_id}", 200, memo={**memo, "call_id": call_id})
        if not self.settings.show_card or memo.get("finished"):
            return Attempt(Verdict.DELIVERED, "card already shown", memo=memo)
        user = await self.users.user_of(extension)
        if user is None:
            return Attempt(Verdict.DELIVERED, f"no portal user has internal number {extension}", memo=memo)
        await self.client.call("telephony.externalCall.show", {"CALL_ID": memo["call_id"], "USER_ID": user})
        return Attempt(Verdict.DELIVERED, f"shown to {user}", 200, memo=memo)

    async def _ring_stopped(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        if not self.settings.show_card or "call_id" not in memo or memo.get("finished"):
            return Attempt(Verdict.DELIVERED, "no card to hide")
        extension = str(event.payload.get("extension") or "")
        user = await self.users.user_of(extension)
        if user is None:
            return Attempt(Verdict.DELIVERED, f"no portal user has internal number {extension}")
        await self.client.call("telephony.externalCall.hide", {"CALL_ID": memo["call_id"], "USER_ID": user})
        return Attempt(Verdict.DELIVERED, f"hidden from {user}", 200)

    async def _ended(self, event: OutboxEvent, memo: dict[str, Any]) -> Attempt:
        payload = event.payload
        if payload.get("refused_call_id"):
            return await self._cancelled(payload)
        if memo.get("finished"):
            return Attempt(Verdict.DELIVERED, "already finished", memo=memo)
        memo = await self._adopted(payload, memo)
        skip = None if "call_id" in memo else self._skip(payload)
        if skip is not None:
            return Attempt(Verdict.DELIVERED, skip)
        extension = models.who_finishes(payload)
        if "call_id" not in memo:
            # No phone rang (an IVR or queue hang-up): registered now, at the call's start, then finished.
            memo["call_id"] = await self._register(event, payload, extension)
            # Kept at once: a crmtel killed between register and finish must not register a second call.
            await save_memo(
                self.db, NAME, event.pbx, event.linkedid, {"call_id": memo["call_id"]}, datetime.now(UTC)
            )
        params = {
            "CALL_ID": memo["call_id"],
            **(await self._user_params(extension)),
            "DURATION": models.duration(payload),
            "STATUS_CODE": models.status_code(payload),
            "ADD_TO_CHAT": 1,
        }
        try:
            result = await self.client.call("telephony.externalCall.finish", params)
        except B24Error as err:
            if err.code == "ERROR_CORE" and "not found" in err.description.lower():
                # Our own registered call is no longer open: an earlier attempt finished it and its answer was
                # lost (crmtel killed before recording it). Finishing again would make a second activity.
                return Attempt(
                    Verdict.DELIVERED,
                    f"finished before: {err.description}",
                    err.status,
                    memo={**memo, "finished": True},
                )
            raise
        activity = result.get("CRM_ACTIVITY_ID") if isinstance(result, dict) else None
        return Attempt(
            Verdict.DELIVERED,
            f"finished {memo['call_id']} (activity {activity})",
            200,
            memo={**memo, "finished": True},
        )

    async def _cancelled(self, payload: Mapping[str, Any]) -> Attempt:
        """Finish a click-to-call crmtel refused to dial: cancelled (603-S), with crmtel's reason."""
        params = {
            "CALL_ID": str(payload["refused_call_id"]),
            "USER_ID": int(payload.get("user_id") or self.settings.default_user_id),
            "DURATION": 0,
            "STATUS_CODE": "603-S",
            "FAILED_REASON": str(payload.get("reason") or "")[:200],
            "ADD_TO_CHAT": 0,
        }
        try:
            await self.client.call("telephony.externalCall.finish", params)
        except B24Error as err:
            if err.code == "ERROR_CORE" and "not found" in err.description.lower():
                return Attempt(Verdict.DELIVERED, f"finished before: {err.description}", err.status)
            raise
        return Attempt(Verdict.DELIVERED, f"cancelled {params['CALL_ID']}", 200)

    async def _recording(self, event: OutboxEvent, memo: Mapping[str, Any]) -> Attempt:
        if "call_id" not in memo:
            return Attempt(Verdict.DELIVERED, "no Bitrix24 call to attach to")
        stored = event.payload.get("recording_file")
        path = locate(self.recordings_dir, str(stored), None, event.linkedid) if stored else None
        if path is None:
            # MixMonitor may still be writing, or the spool is mounted late: try again (up to give_up_hours).
            return Attempt(Verdict.RETRY, f"recording {stored} not found below {self.recordings_dir}")
        size = path.stat().st_size
        if size > MAX_RECORDING:
            return Attempt(Verdict.FAILED, f"recording {path.name} is {size} bytes: too large to attach")
        # Streamed from disk into the request (base64 a chunk at a time), never the whole file in memory.
        await self.client.upload(
            "telephony.externalCall.attachRecord",
            {"CALL_ID": memo["call_id"], "FILENAME": path.name},
            "FILE_CONTENT",
            path,
        )
        return Attempt(Verdict.DELIVERED, f"attached {path.name}", 200)
