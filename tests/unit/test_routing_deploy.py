"""The shipped Asterisk snippets agree with what the route server sends and stay least-privileged."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from crmtel.routing.agi import variables
from crmtel.routing.models import Decision, RouteKind

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "asterisk"
SENT = {name for name, _ in variables(Decision(RouteKind.QUEUE, "retail", "retail", "r", ()))}


@pytest.mark.parametrize("name", ["extensions_crmtel.conf", "extensions_custom.conf"])
def test_dialplan_clears_and_uses_every_variable(name: str) -> None:
    """Each variable crmtel sets is cleared before the AGI call (no stale routes) and read afterwards."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    assert "AGI(agi://127.0.0.1:4573/route," in text
    for var in SENT:
        assert f"Set({var}=)" in text, var
    for var in SENT - {"CRMTEL_ROUTE_REASON"}:
        assert f"${{{var}}}" in text, var


def test_manager_user_is_least_privileged() -> None:
    """The AMI user cannot run CLI commands or change the PBX, and only localhost may log in."""
    conf = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
    conf.read(DEPLOY / "manager_crmtel.conf", encoding="utf-8")
    user = conf["crmtel"]
    write = {c.strip() for c in user["write"].split(",")}
    read = {c.strip() for c in user["read"].split(",")}
    assert write <= {"reporting", "originate"}
    assert {"call", "agent", "dialplan"} <= read
    assert "all" not in read | write
    assert (user["deny"], user["permit"]) == ("0.0.0.0/0.0.0.0", "127.0.0.1/255.255.255.255")
    assert conf["general"]["bindaddr"] == "127.0.0.1"


def test_http_variant_has_a_hard_time_bound_and_reads_every_key_the_server_sends() -> None:
    """The CURL() dialplan bounds connect and transfer time, clears every variable first and reads each
    key of ``GET /route?format=text`` (the text handler's keys) into its variable, KIND last."""
    text = (DEPLOY / "extensions_crmtel_http.conf").read_text(encoding="utf-8")
    assert "[crmtel-inbound-http]" in text
    assert "Set(CURLOPT(httptimeout)=1)" in text
    assert "Set(CURLOPT(conntimeout)=1)" in text
    assert "Set(CURLOPT(hashcompat)=yes)" in text
    assert "CURL(http://127.0.0.1:8080/route?format=text&" in text
    for var in SENT:
        assert f"Set({var}=)" in text, var
    keys = {"kind", "target", "fallback_queue", "reason", "caller_name"}
    reads = [line for line in text.splitlines() if "${HASH(crmtel," in line]
    assert {line.split("${HASH(crmtel,")[1].split(")")[0] for line in reads} == keys
    assert "CRMTEL_ROUTE_KIND=${HASH(crmtel,kind)}" in reads[-1]
