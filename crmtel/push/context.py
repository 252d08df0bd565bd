"""The web app's shared state and the logged-in manager, as typed keys on the app and the request."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

from crmtel.apitokens.service import ApiTokens, Bearer
from crmtel.config import WebSettings
from crmtel.domain import Manager, Role
from crmtel.i18n import Translator
from crmtel.i18n.models import LocaleOptions
from crmtel.managers.models import MobilePolicy
from crmtel.push.hub import Hub
from crmtel.push.passwords import PasswordChecks
from crmtel.push.sessions import DurableSessions
from crmtel.push.throttle import IpNetwork, LoginThrottle
from crmtel.store.deals import DealRepository
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.notes import NoteRepository
from crmtel.store.parties import PartyRepository


@dataclass(frozen=True, slots=True)
class WebState:
    """What the handlers need, built once by ``create_app``."""

    settings: WebSettings
    hub: Hub
    sessions: DurableSessions
    throttle: LoginThrottle
    passwords: PasswordChecks
    trusted_proxies: tuple[IpNetwork, ...]
    managers: ManagerRepository
    history: CallHistory
    notes: NoteRepository
    deals: DealRepository
    parties: PartyRepository
    region: str
    callback_due_minutes: int
    public: frozenset[AbstractResource]
    sockets: weakref.WeakSet[web.WebSocketResponse]
    locale: LocaleOptions
    tokens: ApiTokens
    # At most this many session checks read the store at once (``[web] auth_store_reads``).
    auth_reads: asyncio.Semaphore
    # The page's Content-Security-Policy (connect-src widened for the browser phone's PBX WebSocket).
    csp: str = ""
    # What a manager's own mobile must be, and what runs once one changed (the follow-me globals rewritten).
    mobiles: MobilePolicy = field(default_factory=MobilePolicy)
    on_mobile: Callable[[], Awaitable[None]] | None = None


STATE = web.AppKey("crmtel.push.state", WebState)
MANAGER = web.RequestKey("crmtel.push.manager", Manager)
# Set when the request came with an API token instead of the browser session.
BEARER = web.RequestKey("crmtel.push.bearer", Bearer)


def current_manager(request: web.Request) -> Manager:
    """The logged-in manager of a request that went through the session check (extra routes use this)."""
    return request[MANAGER]


def watch_scope(manager: Manager) -> frozenset[str] | None:
    """The extensions whose calls a manager may see; None means every call (a head of sales)."""
    return None if manager.role is Role.HEAD else frozenset(manager.extensions)


def translator(request: web.Request) -> Translator:
    """The language of whoever sent the request: their stored choice, else their browser's, else the default."""
    manager = request.get(MANAGER)
    stored = manager.locale if manager is not None else None
    return request.app[STATE].locale.translator(stored, request.headers.get("Accept-Language"))
