"""``GET /api/phone``: the logged-in manager's own browser-phone registration (device, realm, digest hash).

The session decides whose: there is no id in the path, so no manager can ask for another's. The answer is a
credential — never cached (no-store) and never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from crmtel.config import WEBPHONE_DEVICE_PREFIX, Settings, WebphoneSettings
from crmtel.dial.models import DialAttempt
from crmtel.dial.policy import DialLimits
from crmtel.errors import CrmtelError
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


class RefusalAudit(Protocol):
    """Where a refused outside call of a browser phone is written (``crmtel.store.dial_attempts.DialAttempts``)."""

    async def add(self, attempt: DialAttempt) -> None:
        """Record an attempt."""
        ...


# A refusal's audit row may not hold the call up for long (a locked store): the refusal stands regardless.
AUDIT_SECONDS = 2.0


def webphone_dial_check(
    settings: Settings,
    *,
    audit: RefusalAudit | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[str | None, str], Awaitable[bool]]:
    """The FastAGI ``webphone-dial`` answer: may a browser phone (of ``extension``) dial ``number`` out on the
    trunk — the browser phone's PBX's click-to-call policy, as ``POST /api/dial/browser``, and its windows:
    at most ``max_per_manager`` outside calls per extension and ``max_per_pbx`` in all per ``rate_seconds``
    (the credential works in any SIP client: a script holding it must not dial without end). A refusal
    leaves an audit row (source ``webphone``). Off: nothing."""
    pbx = settings.pbxes[0] if settings.pbxes else None
    limits = DialLimits({pbx.name: pbx.originate}) if pbx is not None else None

    async def check(extension: str | None, number: str) -> bool:
        if not settings.webphone.enabled or pbx is None or limits is None:
            return False
        verdict = outside_call_verdict(number, settings.region, pbx.originate)
        reason = verdict.key if verdict is not None else None
        if reason is None:
            rate = limits.take(pbx.name, extension or None, clock())
            reason = rate.key if rate is not None else None
        if reason is None:
            return True
        _log.warning(
            "webphone.dial_refused", pbx=pbx.name, extension=extension, number=number[:40], reason=reason
        )
        if audit is not None:
            await _audit_refusal(audit, pbx.name, extension, number, reason)
        return False

    return check


async def _audit_refusal(
    audit: RefusalAudit, pbx: str, extension: str | None, number: str, reason: str
) -> None:
    attempt = DialAttempt(
        at=datetime.now(UTC),
        pbx=pbx,
        source="webphone",
        extension=(extension or "")[:16],
        number=number[:64],
        dialled=number[:64],
        decision="refused",
        reason=reason,
    )
    try:
        async with asyncio.timeout(AUDIT_SECONDS):
            await audit.add(attempt)
    except (CrmtelError, TimeoutError) as err:  # the refusal stands; the daemon's log keeps it
        _log.warning("webphone.audit_failed", pbx=pbx, error=str(err) or type(err).__name__)
