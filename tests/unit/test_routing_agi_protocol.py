"""FastAGI protocol pieces: environment lines, request fields, and argument quoting."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmtel.routing.agi import AgiProtocolError, AgiRequest, parse_env_line, quote, read_env


def asterisk_args(line: str) -> list[str]:
    """Split a command line the way Asterisk's res_agi.c ``parse_args`` does (quotes and backslashes)."""
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                args.append("".join(cur))
                cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
        cur.append(ch)
        escaped = False
    if cur is not None:
        args.append("".join(cur))
    return args


def test_env_line_parsed() -> None:
    """An ``agi_name: value`` line becomes a pair, value stripped."""
    assert parse_env_line(b"agi_callerid: +79161110001") == ("agi_callerid", "+79161110001")
    assert parse_env_line(b"agi_calleridname: A: B") == ("agi_calleridname", "A: B")


@pytest.mark.parametrize(
    "line", [b"GET / HTTP/1.1", b"agi callerid: 1", b"hello", b"\xff\xfe: x", b"agi_x-y: 1"]
)
def test_env_line_garbage_rejected(line: bytes) -> None:
    """Lines that are not AGI environment lines are a protocol error, not a crash."""
    with pytest.raises(AgiProtocolError):
        parse_env_line(line)


@pytest.mark.parametrize(
    ("env", "caller", "did"),
    [
        (
            {"agi_arg_1": "+79161110001", "agi_arg_2": "4951234567", "agi_callerid": "999"},
            "+79161110001",
            "4951234567",
        ),
        (
            {"agi_callerid": "89161110001", "agi_dnid": "4951234567", "agi_extension": "s"},
            "89161110001",
            "4951234567",
        ),
        (
            {"agi_callerid": "unknown", "agi_dnid": "unknown", "agi_extension": "4951234567"},
            None,
            "4951234567",
        ),
        ({"agi_arg_1": "", "agi_callerid": "101"}, "101", None),
    ],
)
def test_request_fields(env: dict[str, str], caller: str | None, did: str | None) -> None:
    """Arguments win over the channel's caller id and DNID; Asterisk's ``unknown`` means absent."""
    request = AgiRequest(env)
    assert (request.caller, request.did) == (caller, did)


@pytest.mark.parametrize(
    ("raw", "script"), [("route", "route"), ("/route/", "route"), ("route?x=1", "route"), ("", "")]
)
def test_script_path(raw: str, script: str) -> None:
    """The script is the URL path without slashes or query string."""
    assert AgiRequest({"agi_network_script": raw}).script == script


async def _env_from(data: bytes) -> AgiRequest:
    reader = asyncio.StreamReader(limit=1024)
    reader.feed_data(data)
    reader.feed_eof()
    return await read_env(reader)


async def test_read_env_until_blank_line() -> None:
    """The environment ends at the first blank line; CRLF line ends are accepted."""
    request = await _env_from(b"agi_network: yes\r\nagi_network_script: route\r\n\r\nSOMETHING ELSE\n")
    assert request.env == {"agi_network": "yes", "agi_network_script": "route"}


@pytest.mark.parametrize(
    "data",
    [
        b"agi_network: yes\n",  # EOF before the blank line
        b"\n",  # empty environment
        b"agi_x: " + b"a" * 5000 + b"\n\n",  # line longer than the reader's limit
        b"".join(b"agi_v%d: 1\n" % i for i in range(500)) + b"\n",  # too many lines
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",  # a TLS hello
    ],
)
async def test_read_env_rejects_bad_input(data: bytes) -> None:
    """Early EOF, oversized or endless environments and binary garbage are protocol errors."""
    with pytest.raises(AgiProtocolError):
        await _env_from(data)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ООО «Ромашка»", "ООО «Ромашка»"),
        ('Say "hi"', "Say 'hi'"),
        ("a\\b", "a b"),
        ("line1\r\nSET VARIABLE X 1", "line1 SET VARIABLE X 1"),
        ("nul\x00bell\x07", "nul bell"),
        ("", ""),
        (None, ""),
    ],
)
def test_quote(value: str | None, expected: str) -> None:
    """Quoted values keep readable text and lose only what could break the AGI command line."""
    assert asterisk_args(f"SET VARIABLE X {quote(value)}") == ["SET", "VARIABLE", "X", expected]


def test_quote_limits_length() -> None:
    """Values are cut so a command always fits Asterisk's command buffer."""
    assert len(quote("я" * 10_000)) == 202


@given(st.text())
def test_quote_never_breaks_the_command(value: str) -> None:
    """Whatever the text, the command stays one line with exactly one value argument."""
    line = f"SET VARIABLE X {quote(value)}"
    assert ("\n" in line, "\r" in line) == (False, False)
    args = asterisk_args(line)
    assert (len(args), args[:3]) == (4, ["SET", "VARIABLE", "X"])
