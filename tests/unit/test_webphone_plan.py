"""The browser phone's pure decisions: who gets a device, when a credential is drawn anew, the PJSIP text."""

from __future__ import annotations

import hashlib
import re

from crmtel.config import WebphoneSettings
from crmtel.domain import Manager, Role
from crmtel.push.web import CSP, csp_with
from crmtel.webphone.models import SipCredential
from crmtel.webphone.service import digest_ha1, draw_credential, pjsip_endpoints, plan_sync
from crmtel.webphone.web import webphone_origins

SETTINGS = WebphoneSettings(enabled=True, ws_url="wss://pbx.example.com:8089/ws", realm="crmtel")


def _manager(mid: int, login: str, *exts: str, active: bool = True, name: str = "") -> Manager:
    return Manager(
        id=mid,
        name=name or login.title(),
        login=login,
        role=Role.MANAGER,
        active=active,
        speciality=None,
        extensions=exts,
    )


def test_ha1_is_the_sip_digest_of_device_realm_secret() -> None:
    """HA1 is md5(user:realm:password), the value PJSIP's password_digest = MD5:… and JsSIP's ha1 expect."""
    assert digest_ha1("99101", "crmtel", "s3cret") == hashlib.md5(b"99101:crmtel:s3cret").hexdigest()


def test_each_draw_is_a_new_random_credential() -> None:
    """Two draws for the same device never share a hash (256 random bits behind each)."""
    drawn = {draw_credential(1, "99101", "crmtel").ha1 for _ in range(50)}
    assert len(drawn) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", h) for h in drawn)


def test_a_credential_never_shows_its_hash_in_a_repr() -> None:
    """A credential logged or printed by accident does not give its hash away."""
    cred = draw_credential(1, "99101", "crmtel")
    assert cred.ha1 not in repr(cred)


def test_plan_keeps_fitting_credentials_and_draws_for_new_or_changed_managers() -> None:
    """Anna keeps hers; Boris (none yet) and Vera (extension changed) get new ones; the inactive Gleb and the
    head without a phone have none (Gleb's is dropped)."""
    anna_old = SipCredential(1, "99101", "crmtel", "a" * 32)
    vera_old = SipCredential(3, "99103", "crmtel", "c" * 32)
    gleb_old = SipCredential(4, "99104", "crmtel", "d" * 32)
    managers = [
        _manager(1, "anna", "101"),
        _manager(2, "boris", "102", "112"),
        _manager(3, "vera", "113"),
        _manager(4, "gleb", "104", active=False),
        _manager(5, "head"),
    ]
    plan = plan_sync(managers, {1: anna_old, 3: vera_old, 4: gleb_old}, "crmtel")
    by_login = {e.login: e for e in plan.endpoints}
    assert set(by_login) == {"anna", "boris", "vera"}
    assert by_login["anna"].credential == anna_old
    assert by_login["boris"].credential.device == "99102"
    assert by_login["vera"].credential.device == "99113"
    assert by_login["vera"].credential.ha1 != vera_old.ha1
    assert {c.manager_id for c in plan.new} == {2, 3}
    assert plan.dropped == (4,)


def test_a_new_realm_redraws_every_credential() -> None:
    """HA1 contains the realm: after a realm change every credential is drawn again."""
    plan = plan_sync([_manager(1, "anna", "101")], {1: SipCredential(1, "99101", "old", "a" * 32)}, "crmtel")
    assert [c.realm for c in plan.new] == ["crmtel"]


def test_pjsip_text_has_a_webrtc_endpoint_auth_and_aor_per_manager() -> None:
    """Each manager's device: a webrtc endpoint in the web-phone context, digest auth by hash only, one contact."""
    cred = SipCredential(1, "99101", "crmtel", "0123456789abcdef0123456789abcdef")
    plan = plan_sync([_manager(1, "anna", "101", name='Анна "Смирнова"; [x]')], {1: cred}, "crmtel")
    text = pjsip_endpoints(plan.endpoints, SETTINGS)
    sections = re.findall(r"(?m)^\[([^\]]+)\]", text)
    assert sections == ["crmtel-webphone", "99101", "99101", "99101"]
    assert "webrtc = yes" in text
    assert "context = crmtel-webphone" in text
    assert "password_digest = MD5:0123456789abcdef0123456789abcdef" in text
    assert "realm = crmtel" in text
    assert "auth_type = digest" in text
    assert re.search(r"(?m)^password\s*=", text) is None, "no plaintext password line"
    assert 'callerid = "Анна Смирнова x" <101>' in text, "quotes, ; and brackets cannot break the line"
    assert "max_contacts = 4" in text, "a manager's second browser must not evict the first"
    assert "remove_existing = yes" in text
    assert f"maximum_expiration = {SETTINGS.register_seconds}" in text


def test_the_page_may_connect_to_the_pbx_websocket_only_when_the_phone_is_on() -> None:
    """The page's CSP connect-src gains exactly the PBX's ws(s) origin with the phone on, nothing otherwise."""
    assert webphone_origins(SETTINGS) == ("wss://pbx.example.com:8089",)
    assert webphone_origins(WebphoneSettings()) == ()
    policy = csp_with(webphone_origins(SETTINGS))
    assert "connect-src 'self' wss://pbx.example.com:8089;" in policy
    assert csp_with(()) == CSP
    assert "evil" not in csp_with(("wss://a; script-src evil",)), "an origin cannot add a directive"


def test_a_device_that_is_another_phone_s_extension_is_nobody_s_browser_phone() -> None:
    """Extension 13's browser phone would be 9913 — petr's desk phone: an endpoint [9913] in the include would
    replace that phone on the PBX, so ivan gets none (and any credential he had goes) and the plan says why;
    petr's own browser phone 999913 is made as usual."""
    ivan, petr = _manager(1, "ivan", "13"), _manager(2, "petr", "9913")
    plan = plan_sync([ivan, petr], {1: SipCredential(1, "9913", "crmtel", "a" * 32)}, "crmtel")
    assert [e.credential.device for e in plan.endpoints] == ["999913"]
    assert plan.dropped == (1,)
    assert plan.clashes == ("ivan: 9913 is extension 9913 of petr",)
    text = pjsip_endpoints(plan.endpoints, WebphoneSettings(enabled=True, ws_url="wss://pbx:8089/ws"))
    assert "[9913]" not in text
    assert "[999913]" in text


def test_a_login_or_name_with_newlines_adds_no_section_to_pjsip_conf() -> None:
    """A login (or name) carrying newlines and brackets — a managers sheet, the CLI — reaches the include only as
    safe characters: it wrote '[trunk]' and 'context=from-internal' lines into pjsip.conf before."""
    evil = "evil\n[trunk]\ntype=endpoint\ncontext=from-internal"
    manager = _manager(1, evil, "150", name="\n\n")
    plan = plan_sync([manager], {}, "crmtel")
    text = pjsip_endpoints(plan.endpoints, WebphoneSettings(enabled=True, ws_url="wss://pbx:8089/ws"))
    sections = re.findall(r"(?m)^\[([^\]]*)\]", text)
    assert sections == ["crmtel-webphone", "99150", "99150", "99150"]
    assert "context=from-internal" not in text
    assert "; eviltrunktypeendpointcontextfrom-internal, extension 150" in text
