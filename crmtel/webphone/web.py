"""``GET /api/phone``: the logged-in manager's own browser-phone registration (device, realm, digest hash).

The session decides whose: there is no id in the path, so no manager can ask for another's. The answer is a
credential — never cached (no-store) and never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from crmtel.config import WEBPHONE_DEVICE_PREFIX, Settings, WebphoneSettings
from crmtel.push.context import current_manager, translator
from crmtel.store.sip_credentials import SipCredentialRepository
from crmtel.webphone.models import SipCredential
from crmtel.webphone.service import outside_call_verdict

_log = structlog.get_logger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def registration_json(
    settings: WebphoneSettings, credential: SipCredential, extension: str
) -> dict[str, Any]:
    """What JsSIP's UA needs: the WebSocket address, the device's SIP URI, realm and HA1 (never a password)."""
    host = urlsplit(settings.ws_url).hostname or "localhost"
    return {
        "ws_url": settings.ws_url,
        "uri": f"sip:{credential.device}@{host}",
        "device": credential.device,
        "extension": extension,
        "realm": credential.realm,
        "ha1": credential.ha1,
        "ice_servers": list(settings.ice_servers),
        "register_seconds": settings.register_seconds,
    }


def webphone_origins(settings: WebphoneSettings) -> tuple[str, ...]:
    """What the page's Content-Security-Policy must let it connect to: the PBX's WebSocket origin."""
    if not settings.enabled or not settings.ws_url:
        return ()
    parts = urlsplit(settings.ws_url)
    return (f"{parts.scheme}://{parts.netloc}",)


def webphone_routes(settings: WebphoneSettings, credentials: SipCredentialRepository) -> web.RouteTableDef:
    """The browser phone's route (behind the session check)."""
    routes = web.RouteTableDef()

    @routes.get("/api/phone")
    async def phone(request: web.Request) -> web.Response:
        manager = current_manager(request)
        tr = translator(request)
        found = await credentials.for_manager(manager.id) if settings.enabled else None
        if found is None:
            key = "webphone.no_device" if settings.enabled else "webphone.off"
            return web.json_response({"error": tr.t(key), "key": key}, status=404, headers=NO_STORE)
        extension = found.device.removeprefix(WEBPHONE_DEVICE_PREFIX)
        return web.json_response(registration_json(settings, found, extension), headers=NO_STORE)

    return routes


def webphone_dial_check(settings: Settings) -> Callable[[str | None, str], Awaitable[bool]]:
    """The FastAGI ``webphone-dial`` answer: may a browser phone (of ``extension``) dial ``number`` out on the
    trunk — the browser phone's PBX's click-to-call policy, as ``POST /api/dial/browser``. Off: nothing."""
    pbx = settings.pbxes[0] if settings.pbxes else None

    async def check(extension: str | None, number: str) -> bool:
        if not settings.webphone.enabled or pbx is None:
            return False
        verdict = outside_call_verdict(number, settings.region, pbx.originate)
        if verdict is not None:
            _log.warning(
                "webphone.dial_refused",
                pbx=pbx.name,
                extension=extension,
                number=number[:40],
                reason=verdict.key,
            )
        return verdict is None

    return check
