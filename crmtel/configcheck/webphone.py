"""``config check`` for the browser phone: the address browsers can use, and (with --connect) whether the PBX
serves SIP over WebSocket there, over TLS, from an Asterisk whose WebRTC audio works."""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp

from crmtel.ami.client import AmiClient, AmiError, LoginFailed
from crmtel.ami.protocol import Message
from crmtel.config import Settings
from crmtel.configcheck.messages import Problem
from crmtel.configcheck.origins import Origins

CONNECT_TIMEOUT = 5.0
# Asterisk 22.6.0 and 20.16.0 broke WebRTC audio after an SSRC change (asterisk issue 1535); fixed in these.
FIXED_IN = {22: (22, 7, 0), 20: (20, 17, 0)}
LOC = ("webphone", "ws_url")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_problems(settings: Settings, origins: Origins) -> list[Problem]:
    """ws:// away from the loopback: a page served over https may open only wss:// (mixed content)."""
    phone = settings.webphone
    if not phone.enabled:
        return []
    parts = urlsplit(phone.ws_url)
    if parts.scheme == "ws" and not _loopback(parts.hostname or ""):
        return [
            Problem(
                origins.of(LOC),
                f"{phone.ws_url} is not encrypted: browsers open only wss:// from a page served over https "
                "(and the microphone needs a secure page)",
                "wss://HOST:8089/ws with tlsenable = yes in http.conf (deploy/asterisk/http_crmtel.conf)",
            )
        ]
    return []


def version_problem(version: str) -> str | None:
    """Why this Asterisk version (``22.10.1``, ``certified-20.7-cert5``…) cannot carry the browser phone, or None."""
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if found is None:
        return f'cannot tell the Asterisk version from "{version}"'
    numbers = (int(found.group(1)), int(found.group(2)), int(found.group(3) or 0))
    major = numbers[0]
    if major < 20:
        return f"Asterisk {version} is too old for the browser phone"
    fixed = FIXED_IN.get(major)
    if fixed is not None and numbers < fixed:
        return (
            f"Asterisk {version} has broken WebRTC audio after an SSRC change (asterisk issue 1535; "
            f"fixed in {'.'.join(map(str, fixed))})"
        )
    if major == 21:
        return (
            f"Asterisk {version} is past its end of life and has the WebRTC audio defect; use 22.7 or later"
        )
    return None


class _Nowhere:
    """A probe reads no events worth keeping."""

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        """Dropped."""

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        """Dropped."""

    async def on_idle(self, pbx: str) -> None:
        """Nothing to do."""

    async def on_lost(self, pbx: str, at: datetime) -> None:
        """Nothing to do."""


async def _asterisk_version(settings: Settings) -> str | None:
    pbx = settings.pbxes[0]
    client = AmiClient(pbx, _Nowhere(), connect_timeout=CONNECT_TIMEOUT, action_timeout=CONNECT_TIMEOUT)
    try:
        (reply,) = await client.probe([("CoreSettings", ())])
    except (LoginFailed, OSError, TimeoutError, AmiError):
        return None  # the AMI check says what is wrong with the login
    first = reply[0] if reply else None
    return first.get("AsteriskVersion") if first is not None else None


async def _websocket_problem(url: str) -> tuple[str, str] | None:
    """Open the SIP WebSocket as a browser does (subprotocol "sip"); what failed, and what to fix."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'wss' else 80)}"
    timeout = aiohttp.ClientWSTimeout(ws_receive=CONNECT_TIMEOUT, ws_close=CONNECT_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT)) as session,
            session.ws_connect(url, protocols=("sip",), timeout=timeout) as ws,
        ):
            if ws.protocol != "sip":
                return (
                    f"{url} answers but does not speak SIP (res_pjsip_transport_websocket not loaded)",
                    "`module load res_pjsip_transport_websocket.so` and a transport with protocol = wss",
                )
            return None
    except aiohttp.WSServerHandshakeError as err:
        if err.status == 404:
            return (
                f"{url}: the PBX's HTTP server has no /ws (res_http_websocket not loaded, or another path)",
                "`module load res_http_websocket.so`; http.conf enabled = yes; `http show status` lists /ws",
            )
        return (f"{url} refused the WebSocket handshake (HTTP {err.status})", "")
    except (ssl.SSLError, aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as err:
        return (
            f"no working TLS at {where}: {err.__class__.__name__}",
            "tlsenable = yes with a certificate browsers trust in http.conf (deploy/asterisk/http_crmtel.conf)",
        )
    except aiohttp.ServerDisconnectedError:
        return (
            f"{where} closed the connection during the handshake (plain HTTP on a TLS port, or no TLS)",
            "tlsbindaddr/tlsenable in http.conf (deploy/asterisk/http_crmtel.conf)",
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        return (
            f"cannot reach {url}: {err.__class__.__name__}: {err}",
            "http.conf bindaddr/bindport (ws) or tlsbindaddr (wss) and the firewall",
        )


async def connect_problems(settings: Settings, origins: Origins) -> list[Problem]:
    """The PBX's version and its /ws, as the managers' browsers will meet them."""
    phone = settings.webphone
    if not phone.enabled:
        return []
    problems = []
    if settings.pbxes:
        version = await _asterisk_version(settings)
        why = version_problem(version) if version else None
        if why:
            problems.append(Problem(origins.of(("ami", "host")), why, "Asterisk 22.7+ (or 20.17+)"))
    found = await _websocket_problem(phone.ws_url)
    if found is not None:
        problems.append(Problem(origins.of(LOC), *found))
    return problems
