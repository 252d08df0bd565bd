"""Browser-phone credentials against a real Asterisk 22: what crmtel replaces, the PBX refuses. A SIP client
holding a manager's digest hash (the page's, or one copied from it) registers over the PBX's /ws until
`manager deactivate` or `manager passwd` — then, once the PBX has reloaded the include, it is refused and the
new credential registers. (The browser test covers `passwd` through the page; this one any SIP client, and
deactivation.)"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.fixtures.daemon import child_env
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import Install
from tests.live.crmtel_side import Staff
from tests.live.rig import WEBPHONE_FILE, LiveRig, RigSpec, live_rig

pytestmark = RACES_PROCESSES

STAFF = (
    Staff("anna", "Anna", "131", password="pw-anna"),
    Staff("boris", "Boris", "132", password="pw-boris"),
)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _hashes(rig: LiveRig) -> dict[str, str]:
    """device -> HA1 in the PBX's include, as crmtel wrote it."""
    text = (rig.cfg.etc / WEBPHONE_FILE).read_text(encoding="utf-8")
    return dict(
        re.findall(r"(?m)^\[(\d+)\]\ntype = auth\n(?:.*\n)*?password_digest = MD5:([0-9a-f]{32})$", text)
    )


def _register(device: str, host: str, cseq: int, call_id: str, tag: str, auth: str = "") -> str:
    lines = [
        f"REGISTER sip:{host} SIP/2.0",
        f"Via: SIP/2.0/WS test.invalid;branch=z9hG4bK{secrets.token_hex(8)}",
        "Max-Forwards: 70",
        f"To: <sip:{device}@{host}>",
        f"From: <sip:{device}@{host}>;tag={tag}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{tag}@test.invalid;transport=ws>;expires=60",
        "Expires: 60",
        *([auth] if auth else []),
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines)


async def register(ws_url: str, device: str, ha1: str) -> int:
    """REGISTER ``device`` over the PBX's WebSocket with digest auth from ``ha1``: the final SIP status."""
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, protocols=("sip",)) as ws:
        status, _ = await _register_on(ws, device, ha1, secrets.token_hex(5))
        return status


async def _register_on(
    ws: aiohttp.ClientWebSocketResponse, device: str, ha1: str, tag: str
) -> tuple[int, list[tuple[str, str]]]:
    """REGISTER ``device`` (contact ``sip:<tag>@…``) on an open socket: the final status and its headers."""
    host = "127.0.0.1"
    call_id = secrets.token_hex(10)
    await ws.send_str(_register(device, host, 1, call_id, tag))
    status, headers = await _final(ws)
    if status != 401:
        return status, headers
    challenge = next(v for k, v in headers if k.lower() == "www-authenticate")
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    uri, nc, cnonce = f"sip:{host}", "00000001", secrets.token_hex(8)
    ha2 = _md5(f"REGISTER:{uri}")
    if "auth" in params.get("qop", ""):
        response = _md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response, extra = _md5(f"{ha1}:{params['nonce']}:{ha2}"), ""
    auth = (
        f'Authorization: Digest username="{device}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm=MD5{extra}'
    )
    await ws.send_str(_register(device, host, 2, call_id, tag, auth))
    return await _final(ws)


async def _final(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, list[tuple[str, str]]]:
    """The next final (non-1xx) SIP response on the socket: status and headers."""
    while True:
        msg = await ws.receive(timeout=15.0)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        head = msg.data.split("\r\n\r\n", 1)[0].split("\r\n")
        status = int(head[0].split()[1])
        if status >= 200:
            return status, [(k, v) for k, _, v in (h.partition(":") for h in head[1:]) if _]


async def test_deactivation_and_passwd_make_the_pbx_refuse_the_old_credential(
    live_install: Install, tmp_path: Path, database_for: Callable[[Path], str]
) -> None:
    """Anna's and Boris's hashes register; `manager deactivate anna` + reload: hers is refused (and 99131 is
    gone); `activate` gives her a new one that registers while the old stays refused; `manager passwd boris`
    + reload: his old hash is refused, the new one registers."""
    folder = tmp_path / "live"
    spec = RigSpec(staff=STAFF, webphone=True)
    async with live_rig(live_install, folder, database_for(folder), spec, start_crmtel=False) as rig:
        ws_url = f"ws://127.0.0.1:{rig.cfg.ports.http}/ws"
        first = _hashes(rig)
        assert set(first) == {"99131", "99132"}
        assert await register(ws_url, "99131", first["99131"]) == 200
        assert await register(ws_url, "99132", first["99132"]) == 200
        assert await register(ws_url, "99131", _md5("99131:crmtel:guess")) != 200

        code, out = await rig.crmtel_cli("manager", "deactivate", "anna")
        assert code == 0, out
        rig.pbx.cli("module reload res_pjsip.so")  # what deploy/systemd/crmtel-webphone.path does
        assert "99131" not in _hashes(rig)
        assert await register(ws_url, "99131", first["99131"]) != 200
        assert await register(ws_url, "99132", first["99132"]) == 200

        code, out = await rig.crmtel_cli("manager", "activate", "anna")
        assert code == 0, out
        rig.pbx.cli("module reload res_pjsip.so")
        second = _hashes(rig)
        assert second["99131"] != first["99131"]
        assert await register(ws_url, "99131", first["99131"]) != 200
        assert await register(ws_url, "99131", second["99131"]) == 200

        await _passwd(rig, "boris", "pw-boris-2")
        rig.pbx.cli("module reload res_pjsip.so")
        third = _hashes(rig)
        assert third["99132"] != first["99132"]
        assert await register(ws_url, "99132", first["99132"]) != 200
        assert await register(ws_url, "99132", third["99132"]) == 200


async def test_two_browsers_of_one_manager_both_stay_registered(
    live_install: Install, tmp_path: Path, database_for: Callable[[Path], str]
) -> None:
    """Anna is logged in from two browsers (two SIP-over-WebSocket connections with her hash): the second's
    REGISTER keeps the first's contact bound (its 200 OK lists both, as does the first's refresh) — with
    max_contacts = 1 + remove_existing it silently evicted the first, whose page still said "registered"."""
    folder = tmp_path / "live"
    spec = RigSpec(staff=STAFF, webphone=True)
    async with live_rig(live_install, folder, database_for(folder), spec, start_crmtel=False) as rig:
        ws_url = f"ws://127.0.0.1:{rig.cfg.ports.http}/ws"
        ha1 = _hashes(rig)["99131"]
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(ws_url, protocols=("sip",)) as office,
            http.ws_connect(ws_url, protocols=("sip",)) as laptop,
        ):
            status, _ = await _register_on(office, "99131", ha1, "office")
            assert status == 200
            status, headers = await _register_on(laptop, "99131", ha1, "laptop")
            assert status == 200
            assert _bound(headers) == {"office", "laptop"}
            status, headers = await _register_on(office, "99131", ha1, "office")
            assert status == 200
            assert _bound(headers) == {"office", "laptop"}
            # [crmtel-ring] rings every browser of hers (PJSIP/99131 alone rings only the first contact).
            rig.pbx.cli("channel originate Local/131@crmtel-queue-member application Wait 20")
            assert await _invited(office) == "office"
            assert await _invited(laptop) == "laptop"
            rig.pbx.cli("channel request hangup all")


async def _invited(ws: aiohttp.ClientWebSocketResponse) -> str:
    """The contact user of the next INVITE that arrives on the socket."""
    while True:
        msg = await ws.receive(timeout=15.0)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        if msg.data.startswith("INVITE "):
            found = re.match(r"INVITE sip:([^@ ]+)@", msg.data)
            assert found is not None, msg.data[:200]
            return found.group(1)


def _bound(headers: list[tuple[str, str]]) -> set[str]:
    """The users of the contacts a REGISTER's 200 OK lists (every binding of the AOR)."""
    values = ",".join(v for k, v in headers if k.strip().lower() in ("contact", "m"))
    return set(re.findall(r"<sip:([^@>]+)@", values))


async def _passwd(rig: LiveRig, login: str, password: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crmtel.cli", "--config", str(rig.config_path), "manager", "passwd", login,
        cwd=rig.folder, env=child_env(), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(f"{password}\n".encode()), 60)
    assert proc.returncode == 0, out.decode(errors="replace")
