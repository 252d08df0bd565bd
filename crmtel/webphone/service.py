"""The browser phone's decisions: which manager gets which device and credential, and the PJSIP text for them.

Pure: no I/O. ``sync.py`` reads the managers, applies the plan and writes the file.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Literal

from crmtel.config import WEBPHONE_DEVICE_PREFIX, OriginateSettings, WebphoneSettings
from crmtel.dial.policy import Verdict, check_number
from crmtel.domain import Manager
from crmtel.phones import PhoneKind, normalize
from crmtel.webphone.models import Endpoint, SipCredential, SyncPlan

Flavour = Literal["asterisk", "freepbx"]

# What FreePBX writes on every "Apply Config" / `fwconsole reload` (FreePBX/core release/17.0: PJSip.class.php
# genConfig(), lines 427-436 and 491; etc/extensions.conf and etc/http.conf are core's own, generated with
# extensions_additional.conf / http_additional.conf): crmtel never writes these, its file is #included from
# pjsip_custom_post.conf, which FreePBX includes (line 491) and never writes.
FREEPBX_OWNED = frozenset(
    {
        "pjsip.conf",
        "pjsip.transports.conf",
        "pjsip.endpoint.conf",
        "pjsip.aor.conf",
        "pjsip.auth.conf",
        "pjsip.registration.conf",
        "pjsip.identify.conf",
        "pjsip_notify.conf",
        "extensions.conf",
        "extensions_additional.conf",
        "http.conf",
        "http_additional.conf",
    }
)

# Only characters that cannot break out of a PJSIP value or a quoted caller-id name.
_UNSAFE_NAME = re.compile(r"[^\w .\-]", re.UNICODE)
# What a browser phone may send to the trunk at all: digits, with one leading + (never dialplan syntax such as
# "&" or "@", which would add channels or pick another trunk in Dial()).
_DIALLED = re.compile(r"\+?[0-9]{1,20}")


# Browsers of one manager registered at once (each rings); one more replaces the oldest (remove_existing).
BROWSERS_PER_MANAGER = 4


def digest_ha1(device: str, realm: str, secret: str) -> str:
    """SIP digest's HA1: md5(user:realm:password), what PJSIP's password_digest and JsSIP's ``ha1`` take."""
    return hashlib.md5(f"{device}:{realm}:{secret}".encode(), usedforsecurity=False).hexdigest()


def draw_credential(manager_id: int, device: str, realm: str) -> SipCredential:
    """A new credential from 256 random bits; the secret itself is dropped here and never stored or shown."""
    return SipCredential(manager_id, device, realm, digest_ha1(device, realm, secrets.token_urlsafe(32)))


def device_of(manager: Manager) -> str | None:
    """The manager's browser-phone device (99 + their first extension), or None when they get none."""
    if not manager.active or not manager.extensions:
        return None
    return WEBPHONE_DEVICE_PREFIX + manager.extensions[0]


def plan_sync(managers: Sequence[Manager], existing: Mapping[int, SipCredential], realm: str) -> SyncPlan:
    """Every active manager with an extension keeps a credential that fits (same device and realm) or gets a
    new one; everyone else's is dropped. A device that is some manager's extension (99<ext> = 9913 of ext 13
    beside a desk phone 9913) is nobody's browser phone: its endpoint would replace that desk phone's."""
    endpoints: list[Endpoint] = []
    new: list[SipCredential] = []
    clashes: list[str] = []
    wanted: set[int] = set()
    phones = {extension: m.login for m in managers for extension in m.extensions}
    for manager in managers:
        device = device_of(manager)
        if device is None:
            continue
        if device in phones:
            clashes.append(f"{manager.login}: {device} is extension {device} of {phones[device]}")
            continue
        wanted.add(manager.id)
        have = existing.get(manager.id)
        if have is None or have.device != device or have.realm != realm:
            have = draw_credential(manager.id, device, realm)
            new.append(have)
        endpoints.append(Endpoint(have, manager.extensions[0], manager.name, manager.login))
    dropped = tuple(sorted(mid for mid in existing if mid not in wanted))
    return SyncPlan(
        tuple(sorted(endpoints, key=lambda e: e.credential.device)), tuple(new), dropped, tuple(clashes)
    )


def freepbx_owned(path: PurePath) -> bool:
    """Whether FreePBX rewrites this file on "Apply Config" (so crmtel's endpoints written there would vanish)."""
    return path.name in FREEPBX_OWNED


_FREEPBX_HEADER = (
    "; FreePBX: #include this file from /etc/asterisk/pjsip_custom_post.conf (FreePBX's pjsip.conf includes",
    "; that file last and never writes it: core PJSip.class.php genConfig()). No transport here: FreePBX's own",
    "; wss transport (Settings > Asterisk SIP Settings > PJSIP: wss on 0.0.0.0) takes the browsers. The desk",
    "; phone and the browser ring together through extensions_crmtel_webphone_freepbx.conf.",
)


def pjsip_endpoints(
    endpoints: Sequence[Endpoint],
    settings: WebphoneSettings,
    transport: str = "",
    flavour: Flavour = "asterisk",
) -> str:
    """The PJSIP sections (endpoint, auth, aor) of every browser phone, for an #include in pjsip.conf (on
    FreePBX, in pjsip_custom_post.conf)."""
    out = [
        "; crmtel's browser phones, written by `crmtel config webphone-endpoints` — do not edit: the next",
        "; sync rewrites it. Each is a WebRTC device 99<ext> of a manager's extension; the digest hash below",
        "; is a credential (keep this file 0640, readable by Asterisk only).",
        *(_FREEPBX_HEADER if flavour == "freepbx" else ()),
        "",
        "[crmtel-webphone](!)",
        "type = endpoint",
        "webrtc = yes",
        f"context = {settings.context}",
        "disallow = all",
        "allow = ulaw,alaw",
        "dtmf_mode = rfc4733",
        "direct_media = no",
        "rtp_symmetric = yes",
        "force_rport = yes",
        "rewrite_contact = yes",
        "allow_subscribe = no",
        *([f"transport = {transport}"] if transport else []),
        "",
    ]
    for e in endpoints:
        c = e.credential
        # Names and logins come from people (a sheet, the CLI): only safe characters reach the file, so no
        # newline can add a section to pjsip.conf.
        login = _UNSAFE_NAME.sub("", e.login).strip() or c.device
        name = _UNSAFE_NAME.sub("", e.name).strip() or login
        out += [
            f"; {login}, extension {e.extension}",
            f"[{c.device}](crmtel-webphone)",
            f"auth = {c.device}",
            f"aors = {c.device}",
            f'callerid = "{name}" <{e.extension}>',
            "",
            f"[{c.device}]",
            "type = auth",
            "auth_type = digest",
            f"username = {c.device}",
            f"realm = {c.realm}",
            f"password_digest = MD5:{c.ha1}",
            "",
            f"[{c.device}]",
            "type = aor",
            # A manager's few browsers (office, laptop, home) each keep a contact and all ring; with one contact
            # each browser's REGISTER silently evicted the other's, whose page still said "registered".
            f"max_contacts = {BROWSERS_PER_MANAGER}",
            "remove_existing = yes",
            f"default_expiration = {settings.register_seconds}",
            f"maximum_expiration = {settings.register_seconds}",
            "minimum_expiration = 30",
            "",
        ]
    return "\n".join(out)


def outside_call_verdict(dialled: str, region: str, originate: OriginateSettings) -> Verdict | None:
    """None when the browser phone may call ``dialled`` (the number as the PBX dials it: ``8916…``, ``810…``,
    ``+44…``) on the trunk, else why not: the click-to-call policy (``originate.allow``/``deny``) on its E.164,
    exactly as ``POST /api/dial/browser`` checks it. A browser phone is a SIP device holding a credential any
    SIP client can use, so [crmtel-webphone] asks this before it dials out (FastAGI ``webphone-dial``)."""
    if not _DIALLED.fullmatch(dialled):
        return Verdict("dial.bad_number")
    phone = normalize(dialled, region)
    if phone.kind is not PhoneKind.E164 or phone.e164 is None:
        return Verdict("dial.bad_number")
    return check_number(phone.e164, PhoneKind.E164, originate)
