"""The shipped Asterisk snippets agree with what the route server sends and stay least-privileged."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from crmtel.cli import main
from crmtel.commands import dialplan_globals
from crmtel.config import load_settings
from crmtel.routing.agi import variables
from crmtel.routing.models import Decision, RouteKind

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "asterisk"
SENT = {name for name, _ in variables(Decision(RouteKind.QUEUE, "retail", "retail", "r", ()))}


@pytest.mark.parametrize(
    ("name", "agi"),
    [
        ("extensions_crmtel.conf", "AGI(agi://${CRMTEL_AGI_HOST}:${CRMTEL_AGI_PORT}/route,"),
        ("extensions_custom.conf", "AGI(agi://${CRMTEL_AGI_HOST}:${CRMTEL_AGI_PORT}/route,"),
    ],
)
def test_dialplan_clears_and_uses_every_variable(name: str, agi: str) -> None:
    """Each variable crmtel sets is cleared before the AGI call (no stale routes) and read afterwards."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    assert agi in text
    for var in SENT:
        assert f"Set({var}=)" in text, var
    for var in SENT - {"CRMTEL_ROUTE_REASON"}:
        assert f"${{{var}}}" in text, var


def test_manager_user_is_least_privileged() -> None:
    """The AMI user cannot run CLI commands or change the PBX, and only localhost may log in."""
    conf = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
    conf.read(DEPLOY / "manager.d" / "crmtel.conf", encoding="utf-8")
    user = conf["crmtel"]
    write = {c.strip() for c in user["write"].split(",")}
    read = {c.strip() for c in user["read"].split(",")}
    assert write <= {"reporting", "originate"}
    assert {"call", "agent", "dialplan"} <= read
    assert "all" not in read | write
    assert (user["deny"], user["permit"]) == ("0.0.0.0/0.0.0.0", "127.0.0.1/255.255.255.255")
    # Its own file, included by manager.conf: a [general] here would be a second one, which Asterisk ignores.
    assert "general" not in conf
    text = (DEPLOY / "manager.d" / "crmtel.conf").read_text(encoding="utf-8")
    assert '#include "manager.d/crmtel.conf"' in text
    assert "FIRST [general]" in text
    assert ";     timestampevents = yes" in text
    assert ";     bindaddr = 127.0.0.1" in text


def test_http_variant_has_a_hard_time_bound_and_reads_every_key_the_server_sends() -> None:
    """The CURL() dialplan bounds connect and transfer time, clears every variable first and reads each
    key of ``GET /route?format=text`` (the text handler's keys) into its variable, KIND last."""
    text = (DEPLOY / "extensions_crmtel_http.conf").read_text(encoding="utf-8")
    assert "[crmtel-inbound-http]" in text
    assert "Set(CURLOPT(httptimeout)=1)" in text
    assert "Set(CURLOPT(conntimeout)=1)" in text
    assert "Set(CURLOPT(hashcompat)=yes)" in text
    assert "CURL(http://127.0.0.1:${CRMTEL_WEB_PORT}/route?format=text&" in text
    for var in SENT:
        assert f"Set({var}=)" in text, var
    keys = {"kind", "target", "fallback_queue", "reason", "caller_name"}
    reads = [line for line in text.splitlines() if "${HASH(crmtel," in line]
    assert {line.split("${HASH(crmtel,")[1].split(")")[0] for line in reads} == keys
    assert "CRMTEL_ROUTE_KIND=${HASH(crmtel,kind)}" in reads[-1]


ROOT = DEPLOY.parents[1]


def _globals_file() -> list[str]:
    text = (DEPLOY / "extensions_crmtel_globals.conf").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith(";")]


def test_shipped_dialplan_globals_match_the_shipped_config() -> None:
    """extensions_crmtel_globals.conf is what `crmtel config dialplan-globals` makes of config/crmtel.toml."""
    settings = load_settings(ROOT / "config" / "crmtel.toml")
    assert _globals_file() == dialplan_globals(settings)


def test_dialplan_globals_follow_the_config() -> None:
    """Another AGI port, ring time and default queue in the config → the same values as globals."""
    settings = load_settings(
        None, routing={"agi_host": "0.0.0.0", "agi_port": 4600, "ring_seconds": 35, "default_queue": "q9"}
    )
    assert dialplan_globals(settings) == [
        "CRMTEL_AGI_HOST=127.0.0.1",
        "CRMTEL_AGI_PORT=4600",
        "CRMTEL_WEB_PORT=8080",
        "CRMTEL_RING=35",
        "CRMTEL_DEFAULT_QUEUE=q9",
        "CRMTEL_FOLLOWME=0",
        "CRMTEL_MOBILE_RING=30",
        "CRMTEL_MOBILE_CONFIRM=10",
        "CRMTEL_MOBILE_LANGUAGE=ru",
        "CRMTEL_MOBILE_SOUNDS=",
    ]


def test_mobile_globals_follow_the_config() -> None:
    """[mobile] reaches the dialplan: follow-me on, the mobile's ring and confirm times, English prompts."""
    settings = load_settings(
        None,
        mobile={
            "followme": True,
            "ring_seconds": 25,
            "confirm_seconds": 7,
            "language": "en",
            "sounds": "/usr/share/asterisk/sounds",
        },
    )
    assert dialplan_globals(settings)[5:] == [
        "CRMTEL_FOLLOWME=1",
        "CRMTEL_MOBILE_RING=25",
        "CRMTEL_MOBILE_CONFIRM=7",
        "CRMTEL_MOBILE_LANGUAGE=en",
        "CRMTEL_MOBILE_SOUNDS=/usr/share/asterisk/sounds",
    ]


@pytest.mark.parametrize("name", ["extensions_crmtel.conf", "extensions_crmtel_http.conf"])
def test_plain_dialplans_use_the_globals_and_fall_back_to_the_same_values(name: str) -> None:
    """Ring time, default queue and ports come from the globals; without them, the fallbacks equal them."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    assert not any(line.strip().startswith("same => n,Set(CRMTEL_RING=") for line in text.splitlines())
    for line in _globals_file():
        var, value = line.split("=", 1)
        if var.startswith(("CRMTEL_MOBILE", "CRMTEL_FOLLOWME")):
            continue  # the mobile's dialplan (extensions_crmtel_mobile.conf) reads these
        if var.startswith("CRMTEL_AGI") and "http" in name:
            continue
        assert f"${{{var}}}" in text, var
        assert f'ExecIf($["${{{var}}}" = ""]?Set({var}={value}))' in text, var


def test_config_dialplan_globals_command_prints_the_globals(capsys: pytest.CaptureFixture[str]) -> None:
    """`crmtel --config config/crmtel.toml config dialplan-globals` prints exactly the shipped globals."""
    assert main(["--config", str(ROOT / "config" / "crmtel.toml"), "config", "dialplan-globals"]) == 0
    assert capsys.readouterr().out.splitlines() == _globals_file()


def test_every_recording_in_a_shipped_dialplan_lands_in_the_cdr() -> None:
    """Each MixMonitor() of crmtel's plain-Asterisk dialplans (inbound, HTTP route, click-to-call, the
    browser phone's calls) is followed by
    the CDR(userfield) line, so a call crmtel rebuilds from Master.csv (no recordingfile column) keeps its file."""
    recorded = []
    for path in sorted(DEPLOY.glob("extensions_crmtel*.conf")):
        text = path.read_text(encoding="utf-8")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("same =>")]
        for i, line in enumerate(lines):
            if "MixMonitor(" in line:
                recorded.append(path.name)
                assert i + 1 < len(lines), path.name
                following = lines[i + 1]
                assert following.startswith("same => n,Set(CDR(userfield)=${MIXMONITOR_FILENAME})"), (
                    path.name,
                    line,
                )
    assert sorted(recorded) == [
        "extensions_crmtel.conf",
        "extensions_crmtel_http.conf",
        "extensions_crmtel_originate.conf",
        "extensions_crmtel_webphone.conf",
    ]


def test_the_mobile_dialplan_reads_the_mobile_globals_with_the_same_fallbacks() -> None:
    """extensions_crmtel_mobile.conf reads CRMTEL_MOBILE_* from the globals and, without them, falls back to the
    values the shipped config gives; the inbound dialplans follow the manager to the mobile only when told."""
    text = (DEPLOY / "extensions_crmtel_mobile.conf").read_text(encoding="utf-8")
    for line in _globals_file():
        var, value = line.split("=", 1)
        if not var.startswith("CRMTEL_MOBILE"):
            continue
        assert f"${{{var}}}" in text, var
        if value:
            assert f'ExecIf($["${{{var}}}" = ""]?Set({var}={value}))' in text, var
    for name in ("extensions_crmtel.conf", "extensions_crmtel_http.conf"):
        inbound = (DEPLOY / name).read_text(encoding="utf-8")
        assert 'ExecIf($["${CRMTEL_FOLLOWME}" = ""]?Set(CRMTEL_FOLLOWME=0))' in inbound
        assert "Gosub(crmtel-followme,s,1(${CRMTEL_ROUTE_TARGET}))" in inbound
