"""A strict loopback Bitrix24 for tests, the bench and the demo: the portal's REST, its OAuth server and its events.

Built from the public documentation (bitrix24/b24restdocs): method names are case-insensitive; unknown methods
are ``404 ERROR_METHOD_NOT_FOUND``; a missing token ``401 NO_AUTH_FOUND``, an old one ``401 expired_token``;
``telephony.externalCall.*`` called through an incoming webhook (``/rest/<user>/<code>/…``) is
``WRONG_AUTH_TYPE``; missing required fields are ``400 ERROR_CORE`` with the documented texts; a repeated
register of an unfinished call with the same number, type, user, line and EXTERNAL_CALL_ID within 30 minutes
returns the same CALL_ID; finish needs a registered, unfinished call; attachRecord a finished one (wav/mp3,
base64). Failure injection: ``limit_next`` answers (503 QUERY_LIMIT_EXCEEDED), ``expire_tokens()``,
``latency`` for searches, ``stop()``/``start()`` for an outage.

Offline events (``event.bind`` with ``event_type=offline``): a bound event is queued instead of posted;
``event.offline.get`` hands out the first ``limit`` (50) in time order — ``clear=1`` (the default) deletes them as
it answers, ``clear=0`` hides them under a ``process_id`` until ``event.offline.clear`` deletes them (or a call
with the same ``process_id`` selects them again); ``event.offline.error`` marks them erroneous (returned only to
``error=1``). These methods, like telephony, work only with an application's token. An incoming webhook
(``webhook_code``) may call the other methods (``user.get``, ``searchCrmEntities`` …).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

_TELEPHONY_APP_ONLY = {
    "telephony.externalcall.register",
    "telephony.externalcall.finish",
    "telephony.externalcall.attachrecord",
    "telephony.externalcall.show",
    "telephony.externalcall.hide",
}
_APP_ONLY = _TELEPHONY_APP_ONLY | {
    "event.bind",
    "event.offline.get",
    "event.offline.clear",
    "event.offline.error",
}
MAX_BODY = 96 * 1024 * 1024
_CALL_NOT_FOUND = "Call is not found (call should be registered prior to finishing)"


class _Fault(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class Registration:
    """One registered external call."""

    call_id: str
    params: dict[str, Any]
    user_id: int
    at: float
    external_call_id: str | None
    finished: bool = False


@dataclass
class Activity:
    """A finished call as the portal's statistics and CRM activity keep it."""

    call_id: str
    external_call_id: str | None
    user_id: int
    phone_number: str
    incoming: str
    duration: int
    status_code: str
    start_date: str | None
    records: list[str] = field(default_factory=list)


@dataclass
class OfflineEvent:
    """One entry of the offline event queue."""

    id: int
    at: float
    name: str
    data: dict[str, str]
    message_id: str
    process_id: str | None = None
    error: bool = False

    def as_json(self) -> dict[str, Any]:
        """The entry as event.offline.get lists it."""
        stamp = datetime.fromtimestamp(self.at).astimezone().isoformat(timespec="seconds")
        return {
            "ID": str(self.id),
            "TIMESTAMP_X": stamp,
            "EVENT_NAME": self.name,
            "EVENT_DATA": self.data,
            "EVENT_ADDITIONAL": {"user_id": self.data.get("USER_ID", "1")},
            "MESSAGE_ID": self.message_id,
        }


@dataclass
class User:
    """A portal user with the internal number telephony maps extensions to."""

    id: int
    name: str
    phone_inner: str | None
    active: bool = True


class FakeBitrix24:
    """The portal (``/rest/…``) and the OAuth server (``/oauth/token/``) on one loopback port."""

    def __init__(self, *, client_id: str, client_secret: str, users: list[User] | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.application_token = secrets.token_hex(16)
        self.member_id = secrets.token_hex(16)
        self.users = {u.id: u for u in (users or [User(1, "Admin", None)])}
        self.registrations: dict[str, Registration] = {}
        self.activities: list[Activity] = []
        self.shown: list[tuple[str, int]] = []
        self.hidden: list[tuple[str, int]] = []
        self.requests: list[str] = []
        self.access: dict[str, float] = {}
        # Every token belongs to a portal user (whoever opened the application or installed it); user.admin
        # answers for that user. User 1 is the portal's administrator unless a test says otherwise.
        self.token_user: dict[str, int] = {}
        self.admins: set[int] = {1}
        self.refresh_tokens: set[str] = set()
        self.token_life = 3600.0
        self.limit_next = 0
        # Bitrix24's leaky bucket, (drained per second, size): each REST request fills it by one, a request
        # that would overflow it is 503 QUERY_LIMIT_EXCEEDED. None: no limit (most tests go faster than 2/s).
        self.bucket: tuple[float, int] | None = None
        self.over_limit = 0
        self._level = 0.0
        self._level_at = 0.0
        # When each REST request arrived, by the fake's clock (time.monotonic): tests count them per second.
        self.arrivals: list[float] = []
        self.latency = 0.0
        # Seconds to hold the answer of a method after doing its work (a client killed meanwhile never learns).
        self.answer_delay: dict[str, float] = {}
        # Phone number -> (entity type, id, ASSIGNED_BY_ID) for searchCrmEntities.
        self.entities: dict[str, tuple[str, int, int]] = {}
        # Event name -> "online" handler URL or "offline" (event.bind).
        self.bindings: dict[str, str] = {}
        self.offline: list[OfflineEvent] = []
        self._offline_ids = 0
        # An incoming webhook's "<user>/<code>" (legacy mode); None: no webhook made on this portal.
        self.webhook_code: str | None = None
        # Authorization codes the OAuth server will exchange once (the admin opened the authorize page).
        self.codes: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> None:
        """Listen on loopback (again on the same port after ``stop``)."""
        # A recording's base64 arrives in one JSON body (attachRecord's FILE_CONTENT).
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/rest/{method}", self._rest)
        app.router.add_route("*", "/rest/{user}/{code}/{method}", self._webhook_rest)
        app.router.add_get("/oauth/token/", self._oauth)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop answering (an outage)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """The portal's address (also the OAuth server's, in this fake)."""
        return f"http://127.0.0.1:{self.port}"

    # -- tokens --------------------------------------------------------------------------------------
    def issue(self, user_id: int = 1) -> dict[str, Any]:
        """A fresh access/refresh pair of ``user_id``, as the OAuth server and the install event give them."""
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.access[access] = time.time() + self.token_life
        self.token_user[access] = self.token_user[refresh] = user_id
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(self.token_life),
            "expires": int(time.time() + self.token_life),
            "scope": "telephony,user,crm",
            "domain": f"127.0.0.1:{self.port}",
            "server_endpoint": f"{self.url}/rest/",
            "client_endpoint": f"{self.url}/rest/",
            "member_id": self.member_id,
            "status": "L",
        }

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (the hour ran out)."""
        for token in self.access:
            self.access[token] = 0.0

    async def _oauth(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id or q.get("client_secret") != self.client_secret:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client"}, status=401
            )
        if q.get("grant_type") == "authorization_code":
            code = q.get("code", "")
            if code not in self.codes:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "Invalid authorization code"}, status=400
                )
            self.codes.discard(code)
            return web.json_response(self.issue())
        if q.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = q.get("refresh_token", "")
        if token not in self.refresh_tokens:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid refresh token"}, status=400
            )
        self.refresh_tokens.discard(token)  # refresh tokens rotate: the old one is spent
        return web.json_response(self.issue(self.token_user.get(token, 1)))

    # -- events to the application -------------------------------------------------------------------
    def _auth_fields(self, tokens: dict[str, Any], application_token: str | None = None) -> dict[str, str]:
        user = self.token_user.get(str(tokens.get("access_token", "")), 1)
        auth = {
            **tokens,
            "application_token": application_token or self.application_token,
            "user_id": str(user),
        }
        return {f"auth[{k}]": str(v) for k, v in auth.items()}

    async def post_event(self, handler: str, event: str, data: dict[str, str], **auth: Any) -> int:
        """POST an event to the application's handler as the portal does (form-encoded); the HTTP status."""
        form = {"event": event, "ts": str(int(time.time())), **{f"data[{k}]": v for k, v in data.items()}}
        form.update(self._auth_fields(auth.get("tokens") or self.issue(), auth.get("application_token")))
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                handler, data=urlencode(form), headers={"content-type": "application/x-www-form-urlencoded"}
            ) as response,
        ):
            return response.status

    def authorization_code(self) -> str:
        """The code the portal's authorize page hands an administrator for this application (single use)."""
        code = secrets.token_hex(16)
        self.codes.add(code)
        return code

    def make_webhook(self, user_id: int = 1) -> str:
        """An incoming webhook of ``user_id`` (the legacy way): its base URL, ``<portal>/rest/<user>/<code>/``."""
        self.webhook_code = f"{user_id}/{secrets.token_hex(8)}"
        return f"{self.url}/rest/{self.webhook_code}/"

    def queue_offline(self, event: str, data: dict[str, str], message_id: str) -> None:
        """Log an event in the offline queue (a changed object is one entry: a repeat updates it)."""
        now = time.time()
        for entry in self.offline:
            if entry.name == event and entry.message_id == message_id and entry.process_id is None:
                entry.data, entry.at = data, now
                return
        self._offline_ids += 1
        self.offline.append(OfflineEvent(self._offline_ids, now, event, data, message_id))

    async def install(self, handler: str) -> int:
        """The administrator installs the local application: ONAPPINSTALL with tokens."""
        return await self.post_event(
            handler, "ONAPPINSTALL", {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"}
        )

    async def click_to_call(self, handler: str, user_id: int, phone: str) -> tuple[int, str]:
        """A user clicks a number in the CRM: the call is registered here, then ONEXTERNALCALLSTART is sent."""
        call = self._register_call({"USER_ID": user_id, "PHONE_NUMBER": phone, "TYPE": 1}, user_id, None)
        data = {
            "USER_ID": str(user_id),
            "PHONE_NUMBER": phone,
            "CALL_ID": call.call_id,
            "IS_MOBILE": "0",
            "CRM_ENTITY_TYPE": "CONTACT",
            "CRM_ENTITY_ID": "1",
        }
        if self.bindings.get("ONEXTERNALCALLSTART") == "offline":
            self.queue_offline("ONEXTERNALCALLSTART", data, call.call_id)
            return 0, call.call_id
        status = await self.post_event(handler, "ONEXTERNALCALLSTART", data)
        return status, call.call_id

    # -- REST ----------------------------------------------------------------------------------------
    async def _webhook_rest(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].removesuffix(".json").lower()
        self.requests.append(method)
        code = f"{request.match_info['user']}/{request.match_info['code']}"
        if self.webhook_code is None or code != self.webhook_code:
            return _error(401, "INVALID_CREDENTIALS", "Invalid request credentials")
        if method in _APP_ONLY:
            # The documented answer (telephony.externalCall.register: HTTP 400/403 WRONG_AUTH_TYPE).
            return _error(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method")
        try:
            params = await _params(request)
            if self.limit_next > 0:
                self.limit_next -= 1
                raise _Fault(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            handler = _METHODS.get(method)
            if handler is None or method == "app.info":  # app.info needs an application
                raise _Fault(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            result = await handler(self, params)
        except _Fault as fault:
            return _error(fault.status, fault.error, fault.description)
        return web.json_response({"result": result, "time": {"start": time.time()}})

    def _overflows(self) -> bool:
        now = time.monotonic()
        self.arrivals.append(now)
        if self.bucket is None:
            return False
        drain, size = self.bucket
        self._level = max(0.0, self._level - (now - self._level_at) * drain)
        self._level_at = now
        if self._level + 1 > size:
            return True
        self._level += 1
        return False

    async def _rest(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].removesuffix(".json").lower()
        self.requests.append(method)
        try:
            params = await _params(request)
            token = str(params.pop("auth", "") or request.query.get("auth", ""))
            if self.limit_next > 0:
                self.limit_next -= 1
                raise _Fault(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            if self._overflows():
                self.over_limit += 1
                raise _Fault(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            if not token:
                raise _Fault(401, "NO_AUTH_FOUND", "Wrong authorization data")
            expiry = self.access.get(token)
            if expiry is None:
                raise _Fault(401, "invalid_token", "The access token provided is invalid.")
            if expiry < time.time():
                raise _Fault(401, "expired_token", "The access token provided has expired.")
            handler = _METHODS.get(method)
            if method == "user.admin":  # any user may ask; the answer is about the token's own user
                result: Any = self.token_user.get(token, 1) in self.admins
            elif handler is None:
                raise _Fault(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
            else:
                result = await handler(self, params)
            if self.answer_delay.get(method):
                await asyncio.sleep(self.answer_delay[method])
        except _Fault as fault:
            return _error(fault.status, fault.error, fault.description)
        return web.json_response({"result": result, "time": {"start": time.time()}})

    async def _app_info(self, params: dict[str, Any]) -> Any:
        return {"ID": "7", "CODE": self.client_id, "VERSION": 1, "STATUS": "L", "INSTALLED": True}

    async def _user_get(self, params: dict[str, Any]) -> Any:
        users = sorted(self.users.values(), key=lambda u: u.id)
        start = int(params.get("start") or 0)
        page = users[start : start + 50]
        return [
            {"ID": str(u.id), "NAME": u.name, "ACTIVE": u.active, "UF_PHONE_INNER": u.phone_inner}
            for u in page
        ]

    def _user_of(self, params: dict[str, Any]) -> int:
        if params.get("USER_ID") not in (None, ""):
            try:
                user = self.users.get(int(params["USER_ID"]))
            except (TypeError, ValueError):
                user = None
        elif params.get("USER_PHONE_INNER") not in (None, ""):
            inner = str(params["USER_PHONE_INNER"])
            user = next((u for u in self.users.values() if u.phone_inner == inner), None)
        else:
            raise _Fault(400, "ERROR_CORE", "USER_ID or USER_PHONE_INNER should be set")
        if user is None or not user.active:
            raise _Fault(400, "ERROR_CORE", "User is not found or is not active")
        return user.id

    def _register_call(self, params: dict[str, Any], user_id: int, external: str | None) -> Registration:
        now = time.time()
        key = (
            str(params["PHONE_NUMBER"]),
            str(params["TYPE"]),
            user_id,
            str(params.get("LINE_NUMBER") or ""),
            external,
        )
        for reg in self.registrations.values():
            same = (
                str(reg.params["PHONE_NUMBER"]),
                str(reg.params["TYPE"]),
                reg.user_id,
                str(reg.params.get("LINE_NUMBER") or ""),
                reg.external_call_id,
            )
            if same == key and not reg.finished and now - reg.at < 1800:
                return reg
        call_id = f"externalCall.{secrets.token_hex(16)}.{int(now)}"
        reg = self.registrations[call_id] = Registration(call_id, dict(params), user_id, now, external)
        return reg

    async def _register(self, params: dict[str, Any]) -> Any:
        user_id = self._user_of(params)
        if str(params.get("TYPE")) not in {"1", "2", "3", "4", "5"}:
            raise _Fault(400, "ERROR_CORE", "Unknown TYPE")
        number = str(params.get("PHONE_NUMBER") or "")
        if not number or not number.lstrip("+").isdigit():
            raise _Fault(400, "ERROR_CORE", "Unsupported phone number format")
        start = params.get("CALL_START_DATE")
        if start is not None:
            try:
                parsed = datetime.fromisoformat(str(start))
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None:
                raise _Fault(400, "ERROR_CORE", "CALL_START_DATE should be in the ISO-8601 format")
        external = params.get("EXTERNAL_CALL_ID")
        reg = self._register_call(params, user_id, str(external) if external else None)
        return {
            "CALL_ID": reg.call_id,
            "CRM_CREATED_LEAD": None,
            "CRM_CREATED_ENTITIES": [],
            "CRM_ENTITY_TYPE": "CONTACT",
            "CRM_ENTITY_ID": 1,
        }

    async def _finish(self, params: dict[str, Any]) -> Any:
        call_id = params.get("CALL_ID")
        if not isinstance(call_id, str):
            raise _Fault(400, "INVALID_ARGUMENT", "CALL_ID must be a string")
        user_id = self._user_of(params)
        reg = self.registrations.get(call_id)
        if reg is None or reg.finished:
            raise _Fault(400, "ERROR_CORE", _CALL_NOT_FOUND)
        duration = int(params.get("DURATION") or 0)
        code = str(params.get("STATUS_CODE") or ("200" if duration > 0 else "304"))
        reg.finished = True
        self.activities.append(
            Activity(
                call_id,
                reg.external_call_id,
                user_id,
                str(reg.params["PHONE_NUMBER"]),
                str(reg.params["TYPE"]),
                duration,
                code,
                reg.params.get("CALL_START_DATE"),
            )
        )
        return {
            "CALL_ID": call_id,
            "EXTERNAL_CALL_ID": reg.external_call_id,
            "PORTAL_USER_ID": user_id,
            "CALL_DURATION": duration,
            "CALL_FAILED_CODE": code,
            "CALL_STATUS": 1 if code == "200" else 0,
            "CRM_ACTIVITY_ID": len(self.activities),
            "ID": len(self.activities),
        }

    async def _attach_record(self, params: dict[str, Any]) -> Any:
        call_id = params.get("CALL_ID")
        if not params.get("RECORD_URL") and not params.get("FILENAME"):
            raise _Fault(
                400,
                "",
                "Required parameters are not set. Request should contain either URL or FILENAME parameter",
            )
        activity = next((a for a in self.activities if a.call_id == call_id), None)
        if activity is None:
            raise _Fault(
                400, "", "Call is not found in the statistic table. It looks like it is not finished yet."
            )
        name = str(params.get("FILENAME") or "")
        if not name:
            raise _Fault(400, "ERROR_CORE", "File name is empty")
        if not name.lower().endswith((".wav", ".mp3")):
            raise _Fault(400, "ERROR_CORE", "Wrong file extension. Only wav and mp3 are allowed")
        content = params.get("FILE_CONTENT")
        if content is None:
            return {"uploadUrl": f"{self.url}/rest/upload.json", "fieldName": "file"}
        if not content:
            raise _Fault(400, "ERROR_CORE", "File content is empty.")
        try:
            base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raise _Fault(
                400, "ERROR_CORE", "File content is not properly encoded. Base64 encoding is expected."
            ) from None
        activity.records = [name]  # a second attach replaces the first
        return {"FILE_ID": 9000 + len(self.activities)}

    async def _show(self, params: dict[str, Any]) -> Any:
        call_id, users = str(params.get("CALL_ID") or ""), params.get("USER_ID")
        reg = self.registrations.get(call_id)
        if reg is None:
            return False
        for user in users if isinstance(users, list) else [users or reg.user_id]:
            self.shown.append((call_id, int(user)))
        return True

    async def _hide(self, params: dict[str, Any]) -> Any:
        call_id, users = str(params.get("CALL_ID") or ""), params.get("USER_ID")
        reg = self.registrations.get(call_id)
        if reg is None:
            return False
        if users in (None, ""):
            raise _Fault(400, "ERROR_CORE", "USER_ID should be set")
        for user in users if isinstance(users, list) else [users]:
            self.hidden.append((call_id, int(user)))
        return True

    async def _search(self, params: dict[str, Any]) -> Any:
        if self.latency:
            await asyncio.sleep(self.latency)
        number = str(params.get("PHONE_NUMBER") or "")
        if not number:
            raise _Fault(400, "ERROR_CORE", "PHONE_NUMBER is empty")
        found = self.entities.get(number.lstrip("+"))
        if found is None:
            return []
        kind, entity_id, assigned = found
        user = self.users.get(assigned)
        return [
            {
                "CRM_ENTITY_TYPE": kind,
                "CRM_ENTITY_ID": entity_id,
                "ASSIGNED_BY_ID": assigned,
                "NAME": "Client",
                "ASSIGNED_BY": {
                    "ID": str(assigned),
                    "TIMEMAN_STATUS": "OPENED",
                    "USER_PHONE_INNER": user.phone_inner if user is not None else None,
                    "WORK_PHONE": None,
                    "PERSONAL_PHONE": None,
                    "PERSONAL_MOBILE": None,
                },
            }
        ]

    async def _event_bind(self, params: dict[str, Any]) -> Any:
        event = str(params.get("event") or params.get("EVENT") or "").upper()
        if event not in {"ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART", "ONAPPUNINSTALL"}:
            raise _Fault(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
        kind = str(params.get("event_type") or "online").lower()
        if kind not in {"online", "offline"}:
            raise _Fault(400, "ERROR_CORE", "Unknown event_type")
        handler = str(params.get("handler") or "")
        if kind == "online" and not handler:
            raise _Fault(400, "ERROR_CORE", "Handler is empty")
        if event in self.bindings:
            raise _Fault(400, "ERROR_CORE", "Handler already binded")
        self.bindings[event] = "offline" if kind == "offline" else handler
        return True

    def _process_entries(self, params: dict[str, Any], process_id: str) -> list[OfflineEvent]:
        ids = params.get("id")
        message_ids = params.get("message_id")
        chosen = [e for e in self.offline if e.process_id == process_id]
        if isinstance(ids, list):
            return [e for e in chosen if str(e.id) in {str(i) for i in ids}]
        if isinstance(message_ids, list):
            return [e for e in chosen if e.message_id in {str(m) for m in message_ids}]
        return chosen

    async def _offline_get(self, params: dict[str, Any]) -> Any:
        try:
            limit = int(params.get("limit") or 50)
            clear = int(params.get("clear", 1))
            with_errors = int(params.get("error") or 0)
        except (TypeError, ValueError):
            raise _Fault(400, "ERROR_CORE", "Wrong parameters") from None
        process_id = str(params.get("process_id") or "") or None
        given = params.get("filter")
        wanted: dict[str, Any] = given if isinstance(given, dict) else {}
        name = str(wanted.get("=EVENT_NAME") or wanted.get("EVENT_NAME") or "").upper()
        picked = [
            e
            for e in sorted(self.offline, key=lambda e: (e.at, e.id))
            if (e.process_id is None or (process_id is not None and e.process_id == process_id))
            and (with_errors or not e.error)
            and (not name or e.name == name)
        ][: max(1, min(limit, 50))]
        if clear:
            self.offline = [e for e in self.offline if e not in picked]
            return {"process_id": None, "events": [e.as_json() for e in picked]}
        process_id = process_id or secrets.token_hex(16)
        for entry in picked:
            entry.process_id = process_id
        return {"process_id": process_id, "events": [e.as_json() for e in picked]}

    async def _offline_clear(self, params: dict[str, Any]) -> Any:
        process_id = str(params.get("process_id") or "")
        if not process_id:
            raise _Fault(400, "ERROR_CORE", "process_id is required")
        gone = self._process_entries(params, process_id)
        self.offline = [e for e in self.offline if e not in gone]
        return True

    async def _offline_error(self, params: dict[str, Any]) -> Any:
        process_id = str(params.get("process_id") or "")
        if not process_id:
            raise _Fault(400, "ERROR_CORE", "process_id is required")
        for entry in self._process_entries(params, process_id):
            entry.error, entry.process_id = True, None
        return True


_METHODS = {
    "event.bind": FakeBitrix24._event_bind,
    "event.offline.get": FakeBitrix24._offline_get,
    "event.offline.clear": FakeBitrix24._offline_clear,
    "event.offline.error": FakeBitrix24._offline_error,
    "app.info": FakeBitrix24._app_info,
    "user.get": FakeBitrix24._user_get,
    "telephony.externalcall.register": FakeBitrix24._register,
    "telephony.externalcall.finish": FakeBitrix24._finish,
    "telephony.externalcall.attachrecord": FakeBitrix24._attach_record,
    "telephony.externalcall.show": FakeBitrix24._show,
    "telephony.externalcall.hide": FakeBitrix24._hide,
    "telephony.externalcall.searchcrmentities": FakeBitrix24._search,
}


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise _Fault(400, "INVALID_REQUEST", "Invalid JSON") from None
        if not isinstance(body, dict):
            raise _Fault(400, "INVALID_REQUEST", "Invalid JSON")
        return body
    return dict((await request.post()).items()) if request.can_read_body else dict(request.query)


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
