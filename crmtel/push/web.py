"""The managers' web app: login, the page, the live websocket, and the call APIs."""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.web_urldispatcher import AbstractResource
from pydantic import StringConstraints

from crmtel.apitokens.models import ROUTE_SCOPES, Refusal, allows
from crmtel.apitokens.service import ApiTokens
from crmtel.config import WebSettings
from crmtel.domain import Manager
from crmtel.errors import StoreUnavailable
from crmtel.i18n import supported
from crmtel.i18n.models import LocaleOptions
from crmtel.i18n.web import catalogue_routes
from crmtel.managers.models import BadMobile, MobilePolicy
from crmtel.push import api, calls_csv
from crmtel.push.context import BEARER, MANAGER, STATE, WebState, current_manager, translator, watch_scope
from crmtel.push.csrf import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, csrf_token, csrf_valid
from crmtel.push.hub import Connection, Hub
from crmtel.push.inputs import MAX_BODY, Body, InputError, input_errors, read_body
from crmtel.push.messages import HELLO, encode
from crmtel.push.passwords import LoginsBusy, PasswordChecks
from crmtel.push.sessions import COOKIE, DurableSessions, Sessions
from crmtel.push.throttle import LoginThrottle, client_address, parse_networks
from crmtel.push.watch import SessionWatch
from crmtel.store.api_tokens import ApiTokenRepository
from crmtel.store.db import Database
from crmtel.store.deals import DealRepository
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.notes import NoteRepository
from crmtel.store.parties import PartyRepository
from crmtel.store.sessions import SessionRepository
from crmtel.timestamps import iso_value

__all__ = ["MANAGER", "STATE", "create_app", "current_manager", "watch_scope"]

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A websocket closed with this code is not reopened: the page shows the login form (4000-4999: the app's own).
SESSION_ENDED = 4401

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def csp_with(connect: Sequence[str]) -> str:
    """The page's policy allowing these extra connect-src origins too (the browser phone's ws(s)://host:port)."""
    extra = "".join(f" {origin}" for origin in connect if origin and not any(c in origin for c in " ;,'\""))
    return CSP.replace("connect-src 'self'", "connect-src 'self'" + extra)


def _json_error(
    request: web.Request,
    status: int,
    key: str,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    # In the asker's language; ``code`` (the catalogue key) stays stable for the page.
    body = {"error": translator(request).t(key, **(extra or {})), "code": key, **(extra or {})}
    return web.json_response(body, status=status, headers=headers)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        # Sandboxed frames and privacy redirects say "null": harmless for plain reads, never for the websocket.
        return request.method in ("GET", "HEAD") and request.path != "/ws"
    return urlsplit(origin).netloc.lower() == request.host.lower()


@web.middleware
async def _security(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", request.app[STATE].csp or CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    public = (
        request.match_info.http_exception is not None or request.match_info.route.resource in state.public
    )
    bearer = None if public else _bearer_credential(request)
    # Cross-site writes and websocket hijacking: the browser always says where a request comes from. (A
    # browser never adds an Authorization header on its own, so a bearer request cannot be forged that way.)
    if (
        bearer is None
        and (request.method not in ("GET", "HEAD") or request.path == "/ws")
        and not _same_origin(request)
    ):
        return _json_error(request, 403, "messages.cross_origin")
    if public:
        # Unknown paths get their plain 404/405: there is nothing behind them to protect.
        return await handler(request)
    if bearer is not None:
        return await _as_bearer(request, handler, bearer)
    try:
        # A storm of pages connecting at once (a restart, a cluster node coming back) takes at most
        # ``auth_store_reads`` of the pool's connections; the others wait their turn instead of each opening one.
        async with state.auth_reads:
            manager_id = await state.sessions.manager_id(request.cookies.get(COOKIE))
            manager = await state.managers.get(manager_id) if manager_id is not None else None
    except StoreUnavailable as err:
        log.warning("push.session_check_failed", error=str(err))
        return _json_error(request, 503, "messages.store_unavailable")
    if manager is None or not manager.active:
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPFound("/")
        return _json_error(request, 401, "messages.login_required")
    request[MANAGER] = manager
    if request.method not in SAFE_METHODS and not csrf_valid(
        request.cookies.get(COOKIE), request.headers.get(CSRF_HEADER)
    ):
        return _json_error(request, 403, "messages.csrf")
    try:
        return await handler(request)
    except StoreUnavailable as err:
        log.warning("push.store_unavailable", path=request.path, error=str(err))
        return _json_error(request, 503, "messages.store_unavailable")


def _bearer_credential(request: web.Request) -> str | None:
    """What follows ``Authorization: Bearer`` (None: no bearer header, the session cookie decides)."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def _route_scope(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return ROUTE_SCOPES.get((method, resource.canonical))


async def _as_bearer(request: web.Request, handler: Handler, secret: str) -> web.StreamResponse:
    """An API token instead of the session: the token's manager, narrowed to its scopes; no CSRF, no cookies."""
    state = request.app[STATE]
    try:
        checked = await state.tokens.check(secret)
        manager = await state.managers.get(checked.manager_id) if not isinstance(checked, Refusal) else None
    except StoreUnavailable as err:
        log.warning("push.token_check_failed", error=str(err))
        return _json_error(request, 503, "messages.store_unavailable")
    if isinstance(checked, Refusal) or manager is None or not manager.active:
        why = checked if isinstance(checked, Refusal) else Refusal.INACTIVE
        log.info("push.token_refused", reason=why.value, path=request.path)
        return _json_error(
            request,
            401,
            f"messages.{why.value}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request[MANAGER] = manager
    needed = _route_scope(request)
    if needed is None:
        return _json_error(request, 403, "messages.token_route")
    if not allows(checked.scopes, needed):
        return _json_error(
            request,
            403,
            "messages.token_scope",
            extra={"scope": needed},
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        )
    request[BEARER] = checked
    try:
        return await handler(request)
    except StoreUnavailable as err:
        log.warning("push.store_unavailable", path=request.path, error=str(err))
        return _json_error(request, 503, "messages.store_unavailable")


async def _index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


class LoginBody(Body):
    """What the login form posts."""

    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


async def _login(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_body(request, LoginBody)
    login, password = body.login, body.password
    address = client_address(request.remote, request.headers.get("X-Forwarded-For"), state.trusted_proxies)
    wait = state.throttle.wait(login, address)
    if wait > 0:
        # Refused before the password is checked: a guess during the wait teaches nothing and costs no hash.
        return web.json_response(
            {
                "error": translator(request).t("messages.login_throttled"),
                "code": "messages.login_throttled",
                "retry_after": math.ceil(wait),
            },
            status=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    try:
        manager = await state.managers.authenticate(login, password, verify=state.passwords)
    except LoginsBusy as err:
        log.warning("push.login_busy", waiting=state.passwords.inside, retry_after=err.retry_after)
        return web.json_response(
            {
                "error": translator(request).t("messages.login_busy"),
                "code": "messages.login_busy",
                "retry_after": err.retry_after,
            },
            status=429,
            headers={"Retry-After": str(err.retry_after)},
        )
    except StoreUnavailable as err:
        # /api/login is public (no session check around it): its store errors are answered here.
        log.warning("push.login_store_unavailable", error=str(err))
        return _json_error(request, 503, "messages.store_unavailable")
    if manager is None:
        state.throttle.failed(login, address)
        log.info("push.login_failed", login=login[:100], remote=address)
        return _json_error(request, 401, "messages.login_wrong")
    state.throttle.succeeded(login, address)
    try:
        await state.sessions.drop(request.cookies.get(COOKIE))
        token = await state.sessions.create(manager.id)
    except StoreUnavailable as err:
        log.warning("push.login_store_unavailable", error=str(err))
        return _json_error(request, 503, "messages.store_unavailable")
    # The same as GET /api/me, so the page knows the language, zone and currency right after logging in.
    response = web.json_response(
        {
            **_me_json(manager, state.locale, request.headers.get("Accept-Language")),
            "csrf_token": csrf_token(token),
        }
    )
    _set_csrf_cookie(response, token, state.settings.session_hours * 3600, state.settings.cookie_secure)
    response.set_cookie(
        COOKIE,
        token,
        max_age=state.settings.session_hours * 3600,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=state.settings.cookie_secure,
    )
    log.info("push.login", manager_id=manager.id)
    return response


async def _logout(request: web.Request) -> web.Response:
    state = request.app[STATE]
    token = request.cookies.get(COOKIE)
    await state.sessions.drop(token)
    # This node's pages of the session close now; other nodes' within ``session_check_seconds``.
    for conn in state.hub.all_connections():
        if token and conn.token == token:
            state.hub.end(conn)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response


def _set_csrf_cookie(response: web.StreamResponse, session_token: str, max_age: int, secure: bool) -> None:
    # Readable by the page's script (not HttpOnly): it sends the value back as the X-CSRF-Token header.
    response.set_cookie(
        CSRF_COOKIE, csrf_token(session_token), max_age=max_age, path="/", samesite="Strict", secure=secure
    )


def _me_json(manager: Manager, locale: LocaleOptions, accept_language: str | None) -> dict[str, Any]:
    return {
        **api.manager_json(manager),
        # What the page should use: the negotiated language, the person's own choice (None: the browser's).
        "locale": locale.negotiate(manager.locale, accept_language),
        "locale_choice": manager.locale,
        "languages": list(locale.languages),
        "timezone": locale.timezone,
        "currency": locale.currency,
        # Only the person's own: colleagues' lists never carry a mobile.
        "mobile": manager.mobile,
    }


async def _me(request: web.Request) -> web.Response:
    state = request.app[STATE]
    manager = current_manager(request)
    bearer = request.get(BEARER)
    if bearer is not None:
        # An API token: who it acts as and what it may do; no CSRF token (bearer requests need none).
        return web.json_response(
            {
                **_me_json(manager, state.locale, request.headers.get("Accept-Language")),
                "scopes": sorted(bearer.scopes),
            }
        )
    token = request.cookies.get(COOKIE, "")
    response = web.json_response(
        {
            **_me_json(manager, state.locale, request.headers.get("Accept-Language")),
            "csrf_token": csrf_token(token),
        }
    )
    if request.cookies.get(CSRF_COOKIE) != csrf_token(token):
        # Sessions opened before CSRF tokens existed get their cookie here.
        _set_csrf_cookie(response, token, state.settings.session_hours * 3600, state.settings.cookie_secure)
    return response


class LocaleBody(Body):
    """The language a person picks on the page (null: follow the browser again)."""

    locale: Annotated[str, StringConstraints(strip_whitespace=True, max_length=35)] | None


async def _set_locale(request: web.Request) -> web.Response:
    """``PUT /api/me/locale`` ``{"locale": "en"}`` keeps the choice; ``null`` follows the browser again."""
    state = request.app[STATE]
    manager = current_manager(request)
    body = await read_body(request, LocaleBody)
    choice = supported(body.locale)
    if body.locale is not None and (choice is None or choice not in state.locale.languages):
        tr = translator(request)
        message = tr.t(
            "messages.locale_unsupported", locale=body.locale, choices=", ".join(state.locale.languages)
        )
        raise InputError(message, fields=[{"field": "locale", "message": message}])
    await state.managers.set_locale(manager.id, choice)
    updated = replace(manager, locale=choice)
    return web.json_response(_me_json(updated, state.locale, request.headers.get("Accept-Language")))


class MobileBody(Body):
    """The manager's own mobile from the settings page (empty or null: none)."""

    mobile: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None


async def _set_mobile(request: web.Request) -> web.Response:
    """``PUT /api/me/mobile`` ``{"mobile": "8 916 111-00-01"}``: kept in E.164; 400 naming why it is refused."""
    state = request.app[STATE]
    manager = current_manager(request)
    body = await read_body(request, MobileBody)
    try:
        mobile = state.mobiles.parse(body.mobile, manager.extensions)
    except BadMobile as err:
        params: dict[str, object] = {"number": (body.mobile or "")[:40], "pbx": err.pbx or ""}
        message = translator(request).t(err.key, **params)
        raise InputError(
            message, key=err.key, params=params, fields=[{"field": "mobile", "message": message}]
        ) from err
    await state.managers.set_mobile(manager.id, mobile)
    updated = replace(manager, mobile=mobile)
    if state.on_mobile is not None:
        await state.on_mobile()
    return web.json_response(_me_json(updated, state.locale, request.headers.get("Accept-Language")))


async def _send_frames(ws: web.WebSocketResponse, conn: Connection) -> None:
    try:
        while (frames := await conn.next_frames()) is not None:
            for frame in frames:
                await ws.send_str(frame)
        if conn.ended:
            await ws.close(code=SESSION_ENDED, message=b"session ended")
        elif conn.overflowed:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow, reconnect")
        elif conn.stale:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"refresh, reconnect")
    except ConnectionError:
        return


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    manager = current_manager(request)
    ws = web.WebSocketResponse(heartbeat=state.settings.heartbeat, max_msg_size=4096, compress=False)
    await ws.prepare(request)
    state.sockets.add(ws)
    scope = watch_scope(manager)
    conn = state.hub.connect(
        manager.id, manager.extensions, everyone=scope is None, token=request.cookies.get(COOKIE)
    )
    # The hello goes first (the snapshot waits in the connection's queue until the sender starts): it says
    # which calls are live now, so the page can close cards of calls that ended while it was away, and the
    # server's time, so timers agree with the PBX whatever the browser's clock says.
    hello = {
        "type": HELLO,
        "manager": api.manager_json(manager),
        "everyone": scope is None,
        "live": list(conn.live_calls),
        "now": iso_value(datetime.now(UTC)),
        # The page's keep-alive follows the server's: a socket silent for two of them and 10 s is dead.
        "heartbeat": state.settings.heartbeat,
    }
    try:
        await ws.send_str(encode(hello))
    except ConnectionError:
        state.hub.disconnect(conn)
        return ws
    sender = asyncio.create_task(_send_frames(ws, conn), name=f"push.ws.send.{conn.id}")
    try:
        async for msg in ws:
            # The page only sends keep-alive text; anything else is ignored.
            if msg.type is WSMsgType.TEXT and msg.data == "ping":
                conn.offer('{"type":"pong"}')
    finally:
        state.hub.disconnect(conn)
        sender.cancel()
        await asyncio.wait([sender])
        if not sender.cancelled() and (err := sender.exception()) is not None:
            log.warning("push.ws_sender_failed", error=repr(err))
    return ws


async def _close_sockets(app: web.Application) -> None:
    state = app[STATE]
    state.hub.close_all()
    for ws in list(state.sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def create_app(
    settings: WebSettings,
    *,
    db: Database,
    hub: Hub,
    region: str = "RU",
    callback_due_minutes: int = 30,
    routes: Sequence[web.RouteTableDef] = (),
    public_routes: Sequence[web.RouteTableDef] = (),
    subapps: Mapping[str, web.Application] | None = None,
    locale: LocaleOptions | None = None,
    connect_src: Sequence[str] = (),
    mobiles: MobilePolicy | None = None,
    on_mobile: Callable[[], Awaitable[None]] | None = None,
) -> web.Application:
    """Build the managers' web app.

    Every route requires a logged-in manager except the page itself, its static files, ``/api/login``
    and ``public_routes``. Other features mount themselves here:

    - ``routes``: route tables needing a session (handlers call ``current_manager(request)`` and
      ``watch_scope(manager)`` to filter by who is asking);
    - ``public_routes``: route tables with their own authentication (e.g. the routing engineer's
      ``GET /route`` checked by its token);
    - ``mobiles``: what a manager's own mobile must be (their PBXs' click-to-call policy); ``on_mobile``: run
      after one changed (the follow-me dialplan globals are rewritten);
    - ``subapps``: ``{"/reports": reports_app}``, mounted with ``add_subapp``; this app's session check
      runs before them, so their handlers can also use ``current_manager``.
    """
    locale = locale or LocaleOptions()
    app = web.Application(middlewares=[_security, input_errors, _auth], client_max_size=MAX_BODY)
    public: set[AbstractResource | None] = {
        app.router.add_get("/", _index).resource,
        app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False),
        app.router.add_post("/api/login", _login).resource,
    }
    for table in (catalogue_routes(locale), *public_routes):
        public.update(r.resource for r in app.router.add_routes(table))
    public.discard(None)
    app.router.add_post("/api/logout", _logout)
    app.router.add_get("/api/me", _me)
    app.router.add_put("/api/me/locale", _set_locale)
    app.router.add_put("/api/me/mobile", _set_mobile)
    app.router.add_get("/ws", _websocket)
    api.add_routes(app.router)
    calls_csv.add_routes(app.router)
    for table in routes:
        app.router.add_routes(table)
    for prefix, sub in (subapps or {}).items():
        app.add_subapp(prefix, sub)
    sessions = DurableSessions(
        Sessions(settings.session_hours * 3600), SessionRepository(db), settings.session_hours * 3600
    )
    managers = ManagerRepository(db)
    watch = SessionWatch(hub, sessions, managers, interval=settings.session_check_seconds)
    app.cleanup_ctx.append(watch.cleanup_ctx)
    app[STATE] = WebState(
        settings=settings,
        hub=hub,
        sessions=sessions,
        throttle=LoginThrottle(),
        passwords=PasswordChecks(workers=settings.login_workers, queue=settings.login_queue),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        managers=managers,
        history=CallHistory(db),
        notes=NoteRepository(db),
        deals=DealRepository(db),
        parties=PartyRepository(db, region),
        region=region,
        callback_due_minutes=callback_due_minutes,
        public=frozenset(r for r in public if r is not None),
        sockets=weakref.WeakSet(),
        locale=locale,
        tokens=ApiTokens(ApiTokenRepository(db)),
        auth_reads=asyncio.Semaphore(settings.auth_store_reads),
        csp=csp_with(connect_src),
        mobiles=mobiles or MobilePolicy(region),
        on_mobile=on_mobile,
    )
    app.on_shutdown.append(_close_sockets)
    app.on_cleanup.append(_close_passwords)
    return app


async def _close_passwords(app: web.Application) -> None:
    app[STATE].passwords.close()
