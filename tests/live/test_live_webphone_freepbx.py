"""The browser phone on a FreePBX-like tree against a real Asterisk 22: crmtel's FreePBX files are loaded the way
FreePBX includes custom files, a browser-like client registers with the generated credential (by its digest hash,
as JsSIP does), and an inbound call to the extension rings the desk phone and the browser together through
FreePBX's own macro-dial-one device loop (astdb AMPUSER/DEVICE) and its predial hook.

The tree copies what FreePBX generates (FreePBX/core release/17.0): pjsip.conf's #include lines
(functions.inc/drivers/PJSip.class.php genConfig(), lines 435-436 and 491, pjsip_custom_post.conf inside
[global]); extensions.conf's includes and from-internal (etc/extensions.conf lines 29-31, 218-267) with the empty
[macro-dialout-one-predial-hook] after them (line 320); macro-dial-one's "dstring" loop as FreePBX 17 generates
it (Dialplan/macroDialone.php lines 168-205, as Gosub). Not a real FreePBX: no GUI, no retrieve_conf."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
from functools import partial
from pathlib import Path

from tests.fixtures.daemon import free_port
from tests.fixtures.races import RACES_PROCESSES
from tests.live.asterisk import DEPLOY, Asterisk, Install, PbxConfig, Ports, write_configs
from tests.live.crmtel_side import freepbx_webphone
from tests.live.rig import free_udp_ports, media_port
from tests.live.sipp import Answers, NeverAnswers, endpoint_scenario, spawn_sipp
from tests.live.witness import AmiMessage, Witness

pytestmark = RACES_PROCESSES

# pjsip.conf exactly as FreePBX writes it (PJSip.class.php lines 435-436; line 491 puts the last include in
# [global]).
FREEPBX_PJSIP = (
    "#include pjsip_custom.conf\n#include pjsip.transports.conf\n#include pjsip.transports_custom_post.conf\n"
    "#include pjsip.endpoint.conf\n#include pjsip.endpoint_custom_post.conf\n#include pjsip.aor.conf\n"
    "#include pjsip.aor_custom_post.conf\n"
    "#include pjsip.auth.conf\n#include pjsip.auth_custom_post.conf\n#include pjsip.registration.conf\n"
    "#include pjsip.registration_custom_post.conf\n#include pjsip.identify.conf\n"
    "#include pjsip.identify_custom_post.conf\n"
    "\n[global]\ntype=global\nuser_agent=FreePBX-like\n#include pjsip_custom_post.conf\n"
)

# extensions.conf as FreePBX ships it (etc/extensions.conf lines 29-31; from-internal, lines 218-267, reduced to
# the includes that matter here; the empty predial hook, line 320).
FREEPBX_EXTENSIONS = """[general]
static = yes
writeprotect = yes

#include extensions_override_freepbx.conf
#include extensions_additional.conf
#include extensions_custom.conf

[from-internal]
include => from-internal-xfer
include => bad-number

[from-internal-xfer]
include => from-internal-custom
include => from-internal-additional

[bad-number]
exten => _X.,1,Hangup(1)

[macro-dialout-one-predial-hook]
exten => s,1,Return()
"""

# What FreePBX 17 generates for one user 101 (ext-local, and macro-dial-one with its device loop, Gosub form:
# Dialplan/macroDialone.php release/17.0 lines 14-44, 100-110, 168-205 with the checks this call never takes
# left out).
FREEPBX_ADDITIONAL = """[from-internal-additional]
include => ext-local

[ext-local]
exten => 101,1,Set(__RINGTIMER=20)
 same => n,Gosub(macro-dial-one,s,1(${RINGTIMER},tr,101))
 same => n,Hangup()

[macro-dial-one]
exten => s,1,Set(DEXTEN=${ARG3})
 same => n,Gosub(dstring,1())
 same => n,GotoIf($[${LEN(${DSTRING})}=0]?nodial)
 same => n(godial),Gosub(macro-dialout-one-predial-hook,s,1())
 same => n(dial),Gosub(dialOne-with-exten,${DEXTEN},1(${ARG1}))
 same => n(nodial),Return()
exten => dstring,1,Set(DSTRING=)
 same => n,Set(DEVICES=${DB(AMPUSER/${DEXTEN}/device)})
 same => n,ExecIf($["${DEVICES}"=""]?Return())
 same => n,ExecIf($["${DEVICES:0:1}"="&"]?Set(DEVICES=${DEVICES:1}))
 same => n,Set(LOOPCNT=${FIELDQTY(DEVICES,&)})
 same => n,Set(ITER=1)
 same => n(begin),Set(THISDIAL=${DB(DEVICE/${CUT(DEVICES,&,${ITER})}/dial)})
 same => n,GotoIf($["${THISDIAL:0:5}"!="PJSIP"]?docheck)
 same => n,GotoIf($[ ${REGEX("(/.+/|@)" ${THISDIAL})} = 1 ]?doset)
 same => n,Set(THISDIAL=${PJSIP_DIAL_CONTACTS(${THISDIAL:6})})
 same => n,ExecIf($["${THISDIAL}"=""]?Set(DIALSTATUS=CHANUNAVAIL))
 same => n(docheck),GotoIf($["${THISDIAL}"=""]?skipset)
 same => n(doset),Set(DSTRING=${DSTRING}${THISDIAL}&)
 same => n(skipset),Set(ITER=$[${ITER}+1])
 same => n,GotoIf($[${ITER}<=${LOOPCNT}]?begin)
 same => n,ExecIf($["${DSTRING:-1}"!="&"]?Return())
 same => n,Set(DSTRING=${DSTRING:0:$[${LEN(${DSTRING})}-1]})
 same => n,Return()

[dialOne-with-exten]
exten => _[+-X].,1,Dial(${DSTRING},${ARG1},t)
 same => n,Return()
"""


def _freepbx_tree(cfg: PbxConfig, phones_port: int, webphone_text: str) -> None:
    """Replace the tier's plain-Asterisk pjsip/extensions with a FreePBX-like tree and crmtel's FreePBX files."""
    etc = cfg.etc
    for old in etc.glob("extensions_*.conf"):
        old.unlink()
    files = {
        "pjsip.conf": FREEPBX_PJSIP,
        # FreePBX's generated files: one UDP transport (Sipsettings' "<ip>-udp") and the desk phone 101.
        "pjsip.transports.conf": "#include pjsip.transports_custom.conf\n"
        f"[127.0.0.1-udp]\ntype=transport\nprotocol=udp\nbind=127.0.0.1:{cfg.ports.sip}\n",
        "pjsip.endpoint.conf": "#include pjsip.endpoint_custom.conf\n"
        "[101]\ntype=endpoint\naors=101\nauth=101-auth\ncontext=from-internal\ncallerid=Desk <101>\n"
        "disallow=all\nallow=ulaw,alaw\ndirect_media=no\nrtp_symmetric=yes\n",
        "pjsip.aor.conf": f"#include pjsip.aor_custom.conf\n[101]\ntype=aor\ncontact=sip:101@127.0.0.1:{phones_port}\n",
        "pjsip.auth.conf": "#include pjsip.auth_custom.conf\n"
        "[101-auth]\ntype=auth\nauth_type=userpass\nusername=101\npassword=desk-secret\n",
        "pjsip.registration.conf": "#include pjsip.registration_custom.conf\n",
        "pjsip.identify.conf": "#include pjsip.identify_custom.conf\n",
        # The admin's one line (WEBPHONE.md): crmtel's file from pjsip_custom_post.conf.
        "pjsip_custom_post.conf": "#include pjsip_crmtel_webphone.conf\n",
        "pjsip_crmtel_webphone.conf": webphone_text,
        "extensions.conf": FREEPBX_EXTENSIONS,
        "extensions_override_freepbx.conf": "",
        "extensions_additional.conf": FREEPBX_ADDITIONAL,
        # The admin's extensions_custom.conf: crmtel's one line, and their own (empty) from-internal-custom.
        "extensions_custom.conf": "#include extensions_crmtel_webphone_freepbx.conf\n\n[from-internal-custom]\n",
        "extensions_crmtel_webphone_freepbx.conf": (
            DEPLOY / "extensions_crmtel_webphone_freepbx.conf"
        ).read_text(encoding="utf-8"),
    }
    for name in (
        "pjsip_custom.conf",
        "pjsip.transports_custom.conf",
        "pjsip.endpoint_custom.conf",
        "pjsip.aor_custom.conf",
        "pjsip.auth_custom.conf",
        "pjsip.registration_custom.conf",
        "pjsip.identify_custom.conf",
        "pjsip.transports_custom_post.conf",
        "pjsip.endpoint_custom_post.conf",
        "pjsip.aor_custom_post.conf",
        "pjsip.auth_custom_post.conf",
        "pjsip.registration_custom_post.conf",
        "pjsip.identify_custom_post.conf",
    ):
        files.setdefault(name, "")
    for name, text in files.items():
        (etc / name).write_text(text, encoding="utf-8")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def register(sip_port: int, local_port: int, device: str, ha1: str) -> list[int]:
    """REGISTER ``device`` from 127.0.0.1:``local_port`` answering the digest challenge with the HA1 alone (as
    JsSIP's ``ha1`` option does); the status codes received, in order."""
    uri = f"sip:127.0.0.1:{sip_port}"
    call_id = secrets.token_hex(8)
    statuses: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", local_port))
        sock.settimeout(10)
        authorization = ""
        for cseq in (1, 2):
            request = (
                f"REGISTER {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};rport;branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{device}@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
                f"To: <sip:{device}@127.0.0.1>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{device}@127.0.0.1:{local_port}>\r\nExpires: 120\r\n"
                f"{authorization}Content-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), ("127.0.0.1", sip_port))
            while True:
                reply = sock.recv(65535).decode(errors="replace")
                status = int(reply.split(" ", 2)[1])
                if status >= 200:
                    break
            statuses.append(status)
            if status != 401:
                break
            challenge = re.search(r"(?im)^WWW-Authenticate:\s*Digest (.*)$", reply)
            assert challenge is not None, reply
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(1)))
            cnonce, nc = secrets.token_hex(8), "00000001"
            ha2 = _md5(f"REGISTER:{uri}")
            response = _md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
            authorization = (
                f'Authorization: Digest username="{device}", realm="{params["realm"]}", '
                f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", algorithm=MD5, '
                f'qop=auth, nc={nc}, cnonce="{cnonce}"'
                + (f', opaque="{params["opaque"]}"' if "opaque" in params else "")
                + "\r\n"
            )
    return statuses


def _ends_inside_or_refused(channel_prefix: str, m: AmiMessage) -> bool:
    """This call's channel reached from-internal or was refused (another call's channels are not looked at:
    an earlier call still runs in from-internal)."""
    return (
        m.event == "Newexten"
        and (m.get("Channel") or "").startswith(channel_prefix)
        and (m.get("Context") == "from-internal" or m.get("Extension") == "refused")
    )


def _dial_begins(messages: list[AmiMessage]) -> dict[str, str]:
    """DestChannel's PJSIP device -> the dialling channel, for each DialBegin to a PJSIP device."""
    out = {}
    for m in messages:
        if m.event == "DialBegin" and (m.get("DestChannel") or "").startswith("PJSIP/"):
            out[str(m.get("DestChannel")).rsplit("-", 1)[0]] = str(m.get("Channel"))
    return out


async def test_freepbx_tree_loads_crmtel_files_and_rings_desk_phone_and_browser_together(
    live_install: Install, tmp_path: Path
) -> None:
    """On a FreePBX-like tree: the generated 99101 loads from pjsip_custom_post.conf beside FreePBX's 101,
    crmtel's predial hook wins over FreePBX's empty one, a wrong hash is refused and the generated one
    registers, and a call to extension 101 (astdb lists only the desk phone) rings PJSIP/101 and PJSIP/99101
    from one Dial; the desk phone answers and the browser's leg is cancelled. The browser's own context sends
    a FreePBX user to from-internal and asks crmtel about anything else, failing closed."""
    sip, phones = free_udp_ports(2)
    ports = Ports(
        ami=free_port(), sip=sip, http=free_port(), phones=phones, trunk=0, rtp_start=31000 + (sip % 200) * 40
    )
    recorder = secrets.token_hex(8)
    cfg = PbxConfig(tmp_path / "pbx", live_install, ports, (), (), "", secrets.token_hex(8), recorder)
    write_configs(cfg)
    text, ha1 = freepbx_webphone("101", "Анна", secret=secrets.token_urlsafe(16))
    _freepbx_tree(cfg, phones, text)
    pbx = Asterisk(cfg)
    witness = Witness("127.0.0.1", ports.ami, "live-recorder", recorder)
    sipp = None
    try:
        pbx.start()
        await witness.connect()
        await witness.wait_event("FullyBooted", limit=60)
        endpoints = pbx.cli("pjsip show endpoints")
        assert re.search(r"Endpoint:\s+101\b", endpoints), endpoints + pbx.describe()
        assert re.search(r"Endpoint:\s+99101\b", endpoints), endpoints + pbx.describe()
        shown = pbx.cli("pjsip show endpoint 99101")
        assert re.search(r"webrtc\s*:\s*yes", shown), shown
        assert re.search(r"context\s*:\s*crmtel-webphone", shown), shown
        hook = pbx.cli("dialplan show s@macro-dialout-one-predial-hook")
        assert "PJSIP_DIAL_CONTACTS(99${DEXTEN})" in hook, hook
        assert "Return()" not in hook.split("\n", 3)[1], "FreePBX's empty s,1 must not be the one kept"
        assert "webphone-dial" in pbx.cli("dialplan show crmtel-webphone")
        # FreePBX's astdb: the user has one device, the desk phone (core Core.class.php addDevice()).
        for family, key, value in (("AMPUSER", "101/device", "101"), ("DEVICE", "101/dial", "PJSIP/101")):
            pbx.cli(f"database put {family} {key} {value}")

        wrong = await asyncio.to_thread(register, sip, phones, "99101", _md5("not:the:hash"))
        assert wrong == [401, 401], wrong
        right = await asyncio.to_thread(register, sip, phones, "99101", ha1)
        assert right == [401, 200], right
        contacts = pbx.cli("pjsip show contacts")
        assert f"99101/sip:99101@127.0.0.1:{phones}" in contacts, contacts

        sipp = await spawn_sipp(
            live_install,
            tmp_path,
            "phones",
            endpoint_scenario(
                {"101": Answers(ring=1.0, talk=1.0), "99101": NeverAnswers()}, f"127.0.0.1:{sip}", "phones"
            ),
            bind_ip="127.0.0.1",
            port=phones,
            media_port=media_port(),
        )
        start = len(witness.messages)
        await witness.action(
            "Originate",
            Channel="Local/101@ext-local",
            Application="Wait",
            Data="5",
            CallerID="79035550101",
            Async="true",
        )
        answered = await witness.wait_for(
            lambda m: m.event == "DialEnd" and (m.get("DestChannel") or "").startswith("PJSIP/101-"),
            30.0,
            start,
        )
        cancelled = await witness.wait_for(
            lambda m: m.event == "DialEnd" and (m.get("DestChannel") or "").startswith("PJSIP/99101-"),
            30.0,
            start,
        )
        begins = _dial_begins(witness.messages[start:])
        assert set(begins) == {"PJSIP/101", "PJSIP/99101"}, begins
        assert begins["PJSIP/101"] == begins["PJSIP/99101"], "one Dial rings both"
        assert answered.get("DialStatus") == "ANSWER"
        assert cancelled.get("DialStatus") == "CANCEL"

        # The browser's own calls: a FreePBX user goes to from-internal without asking crmtel; an outside number
        # and a short number that is no user are put to crmtel's webphone-dial first — with no crmtel answering
        # (nothing listens on CRMTEL_AGI_PORT) they are refused and never reach from-internal.
        pbx.cli(f"dialplan set global CRMTEL_AGI_PORT {free_port()}")
        seen: dict[str, tuple[bool, str]] = {}
        for number in ("101", "89161110131", "123"):
            start = len(witness.messages)
            await witness.action(
                "Originate",
                Channel=f"Local/{number}@crmtel-webphone",
                Application="Wait",
                Data="1",
                CallerID="101",
                Async="true",
            )
            ours = f"Local/{number}@crmtel-webphone-"
            end = await witness.wait_for(partial(_ends_inside_or_refused, ours), 30.0, start)
            asked = any(
                m.event == "Newexten"
                and m.get("Application") == "AGI"
                and (m.get("Channel") or "").startswith(ours)
                for m in witness.messages[start:]
            )
            seen[number] = (asked, str(end.get("Context")) + "/" + str(end.get("Extension")))
        assert seen == {
            "101": (False, "from-internal/101"),
            "89161110131": (True, "crmtel-webphone/refused"),
            "123": (True, "crmtel-webphone/refused"),
        }
    finally:
        if sipp is not None:
            await sipp.stop()
        await witness.close()
        await asyncio.to_thread(pbx.stop)
