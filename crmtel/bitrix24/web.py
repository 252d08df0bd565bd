"""``POST /integrations/bitrix24/events``: the application's event handler (install, click-to-call, uninstall).

The portal posts form fields ``event``, ``data[…]`` and ``auth[…]``. The install event is believed only after
its access token works on the *configured* portal and the portal names this application (``app.info`` CODE =
client_id) and the token's own user may manage applications (``user.admin`` true): any portal user's application
page receives an access token that passes ``app.info``, and an install taken from such a user would let them swap in
an application token of their own and forge click-to-calls. Its ``application_token`` is then stored (sealed) and
every later event must carry the same one.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiohttp import web

from crmtel.bitrix24.client import B24Error, Bitrix24Client
from crmtel.bitrix24.service import NAME, ORIGINATES, REFUSED, Users
from crmtel.bitrix24.tokens import Tokens
from crmtel.connectors.models import Kind, Staged
from crmtel.dial.models import DialRefused, DialRequest, DialResult
from crmtel.domain import Manager
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.store.outbox import load_memo, save_memo, stage_in

_log = structlog.get_logger("crmtel.bitrix24")

PATH = "/integrations/bitrix24/events"
_MAX_FIELDS = 100
# Where a click-to-call's CALL_ID is marked as taken (connector_calls: pbx column, CALL_ID as linkedid): the portal
# posting the event again, or an offline event read twice, never dials a second time.
CLICKS = "~click"


class Dialer(Protocol):
    """crmtel's click-to-call (``crmtel.dial.service.DialService``)."""

    async def prepare(
        self,
        number: str,
        *,
        manager: Manager | None,
        extension: str | None = None,
        pbx: str | None = None,
        name: str | None = None,
    ) -> DialRequest:
        """The attempt, or DialRefused."""
        ...

    async def start(self, request: DialRequest, *, manager_id: int | None = None) -> DialResult:
        """Place it."""
        ...


def _split(form: Mapping[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    data: dict[str, str] = {}
    auth: dict[str, str] = {}
    for key, value in form.items():
        for prefix, into in (("data[", data), ("auth[", auth)):
            if key.startswith(prefix) and key.endswith("]"):
                into[key[len(prefix) : -1]] = value
    return form.get("event", "").upper(), data, auth


class EventHandler:
    """Checks and acts on the portal's events."""

    def __init__(self, client: Bitrix24Client, users: Users, db: Database, dial: Dialer | None) -> None:
        self.client = client
        self.users = users
        self.db = db
        self.dial = dial

    async def handle(self, request: web.Request) -> web.Response:
        """One event; 403 for a wrong application token or an install that does not check out."""
        try:
            return await self._handle(request)
        except CrmtelError as err:
            # The store (or the portal) is away: the portal retries its events, so say so instead of a 500.
            _log.warning("bitrix24.event_failed", error=str(err))
            return web.json_response({"error": "try again later"}, status=503)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"error": "form-encoded event expected"}, status=415)
        form = await request.post()
        if len(form) > _MAX_FIELDS:
            return web.json_response({"error": "too many fields"}, status=400)
        event, data, auth = _split({k: v for k, v in form.items() if isinstance(v, str)})
        if event == "ONAPPINSTALL":
            return await self._install(auth)
        stored = await self.client.tokens.load()
        given = auth.get("application_token", "")
        if stored is None or not given or not hmac.compare_digest(given, stored.application_token):
            _log.warning("bitrix24.event_refused", event_name=event[:40], reason="wrong application token")
            return web.json_response({"error": "wrong application token"}, status=403)
        if event == "ONEXTERNALCALLSTART":
            status, body = await self.click_to_call(data)
            return web.json_response(body, status=status)
        if event == "ONAPPUNINSTALL":
            await self.client.tokens.delete()
            _log.warning("bitrix24.uninstalled")
            return web.json_response({"ok": True})
        _log.info("bitrix24.event_ignored", event_name=event[:40])
        return web.json_response({"ok": True, "ignored": event[:40]})

    async def _install(self, auth: Mapping[str, str]) -> web.Response:
        access, refresh, app_token = (
            auth.get("access_token"),
            auth.get("refresh_token"),
            auth.get("application_token"),
        )
        if not access or not refresh or not app_token or not self.client.same_portal(auth.get("domain", "")):
            _log.warning("bitrix24.install_refused", reason="incomplete or another portal")
            return web.json_response({"error": "not this application's install"}, status=403)
        try:
            info = await self.client.call_with("app.info", {}, access)
        except B24Error as err:
            _log.warning("bitrix24.install_refused", reason=f"{err.code}")
            return web.json_response({"error": "the tokens do not work on the portal"}, status=403)
        if not isinstance(info, dict) or info.get("CODE") != self.client.settings.client_id:
            _log.warning("bitrix24.install_refused", reason="another application")
            return web.json_response({"error": "not this application's install"}, status=403)
        try:
            admin = await self.client.call_with("user.admin", {}, access)
        except B24Error as err:
            _log.warning("bitrix24.install_refused", reason=f"user.admin: {err.code}")
            return web.json_response({"error": "the tokens do not work on the portal"}, status=403)
        if admin is not True:
            # Only the user id (no token) is logged: enough for the administrator to find who tried.
            stored = await self.client.tokens.load()
            _log.warning(
                "bitrix24.install_refused",
                reason="the installing user may not manage applications (user.admin false)",
                user_id=auth.get("user_id", "")[:20],
                replaces_installed=stored is not None,
            )
            return web.json_response(
                {"error": "only a portal administrator can install the application"}, status=403
            )
        try:
            expires_in = float(auth.get("expires_in") or 3600)
        except ValueError:
            expires_in = 3600.0
        await self.client.tokens.save(
            Tokens(access, refresh, time.time() + expires_in, app_token, auth.get("member_id", ""))
        )
        _log.info("bitrix24.installed")
        return web.json_response({"ok": True})

    async def click_to_call(self, data: Mapping[str, str]) -> tuple[int, dict[str, object]]:
        """ONEXTERNALCALLSTART (posted or polled): the HTTP status and body of the answer — 200 handled (dialled,
        done before, or refused and finished as cancelled), 400 not a click-to-call, 503 try again later."""
        call_id, number, user = data.get("CALL_ID", ""), data.get("PHONE_NUMBER", ""), data.get("USER_ID", "")
        if not call_id or not number or not user.isdigit():
            return 400, {"error": "CALL_ID, PHONE_NUMBER and USER_ID are required"}
        if self.dial is None:
            return 503, {"error": "click-to-call is not available"}
        try:
            if (await load_memo(self.db, NAME, CLICKS, call_id)).get("taken"):
                _log.info("bitrix24.click_to_call_repeated")
                return 200, {"ok": True, "repeated": True}
            extension = await self.users.extension_of(int(user))
            if extension is None:
                raise DialRefused("dial.no_extension")
            request = await self.dial.prepare(number, manager=None, extension=extension)
            # Remembered before dialling: the call's first event must find it (finish it, never register it).
            memo = {"call_id": call_id, "user_id": int(user)}
            now = datetime.now(UTC)
            await save_memo(self.db, NAME, ORIGINATES, request.originate_id, memo, now)
            await save_memo(self.db, NAME, CLICKS, call_id, {"taken": True}, now)
            try:
                result = await self.dial.start(request)
            except CrmtelError:
                # Not placed: the portal's next attempt (or the next poll) may dial it.
                await save_memo(self.db, NAME, CLICKS, call_id, {"taken": False}, datetime.now(UTC))
                raise
        except DialRefused as err:
            _log.warning("bitrix24.click_to_call_refused", reason=err.key)
            # Bitrix24 registered the call before asking: it is finished as cancelled, not left open.
            await self._cancel(call_id, int(user), err.key)
            return 200, {"error": err.key}
        except CrmtelError as err:
            _log.warning("bitrix24.click_to_call_failed", error=str(err))
            return 503, {"error": "click-to-call failed"}
        return 200, {"ok": True, "originate_id": result.request.originate_id}

    async def _cancel(self, call_id: str, user: int, reason: str) -> None:
        staged = Staged(
            REFUSED,
            call_id,
            Kind.ENDED,
            f"{REFUSED}:{call_id}",
            {"refused_call_id": call_id, "user_id": user, "reason": reason},
        )
        async with self.db.session() as session:
            await stage_in(session, NAME, [staged], datetime.now(UTC))


def bitrix24_routes(handler: EventHandler) -> web.RouteTableDef:
    """The event handler's route (public: checked by the application token)."""
    table = web.RouteTableDef()

    @table.post(PATH)
    async def post_event(request: web.Request) -> web.Response:
        return await handler.handle(request)

    return table
