"""The AMI parser and encoder: framing, decoding and bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmtel.ami.protocol import Message, Parser, encode_action, parse_message
from tests.fixtures.traces import TRACES_DIR

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def _feed_in_chunks(parser: Parser, data: bytes, size: int) -> list[Message]:
    out: list[Message] = []
    for i in range(0, len(data), size):
        out.extend(parser.feed(data[i : i + size]))
    return out


def test_get_is_case_insensitive_and_returns_first_of_repeats() -> None:
    """Message.get ignores header case and returns the first of repeated headers."""
    msg = Message((("Event", "VarSet"), ("Variable", "A"), ("variable", "B")))
    assert msg.get("EVENT") == "VarSet"
    assert msg.get("variable") == "A"
    assert msg.get_all("Variable") == ("A", "B")
    assert msg.get("missing", "x") == "x"


def test_banner_is_taken_and_messages_framed() -> None:
    """The banner line is kept aside and each blank-line-terminated block becomes one message."""
    parser = Parser()
    msgs = parser.feed(BANNER + b"Response: Success\r\nMessage: ok\r\n\r\nEvent: A\r\nX: 1\r\n\r\n")
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert [m.headers for m in msgs] == [
        (("Response", "Success"), ("Message", "ok")),
        (("Event", "A"), ("X", "1")),
    ]


def test_bare_lf_framing_is_tolerated() -> None:
    """Messages ending with a bare LF blank line are framed like CRLF ones."""
    parser = Parser(expect_banner=False)
    msgs = parser.feed(b"Event: A\nX: 1\n\nEvent: B\r\n\r\n")
    assert [m.event for m in msgs] == ["A", "B"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64 * 1024])
def test_cyrillic_name_split_across_reads_stays_whole(size: int) -> None:
    """UTF-8 is decoded per complete message, so a name split mid-character is intact."""
    data = BANNER + "Event: Newchannel\r\nCallerIDName: Анна Смирнова\r\n\r\n".encode()
    msgs = _feed_in_chunks(Parser(), data, size)
    assert [m.get("CallerIDName") for m in msgs] == ["Анна Смирнова"]


def test_invalid_utf8_is_replaced_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Invalid UTF-8 becomes replacement characters with a warning, not an exception."""
    parser = Parser(expect_banner=False)
    with caplog.at_level(logging.WARNING):
        msgs = parser.feed(b"Event: A\r\nName: \xff\xfe ok\r\n\r\n")
    assert msgs[0].get("Name") == "\ufffd\ufffd ok"
    assert "UTF-8" in caplog.text


def test_lines_without_colon_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """A line with no header name is logged and dropped; the rest of the message survives."""
    parser = Parser(expect_banner=False)
    with caplog.at_level(logging.WARNING):
        msgs = parser.feed(b"Event: A\r\ngarbage line\r\nX: 1\r\n\r\n")
    assert msgs[0].headers == (("Event", "A"), ("X", "1"))
    assert "without a header name" in caplog.text


def test_block_of_garbage_yields_nothing_and_parsing_continues() -> None:
    """A frame of pure garbage is dropped and the following message still parses."""
    parser = Parser(expect_banner=False)
    msgs = parser.feed(b"\x00\x01 junk junk\r\n\r\nEvent: Ok\r\n\r\n")
    assert [m.event for m in msgs] == ["Ok"]


def test_oversized_message_is_skipped_with_bounded_buffer() -> None:
    """A message larger than the limit is dropped without growing the buffer, and parsing resumes."""
    parser = Parser(expect_banner=False, max_message=1000)
    out = parser.feed(b"Event: Big\r\n")
    for _ in range(100):
        out += parser.feed(b"X: " + b"y" * 97 + b"\r\n")
        assert parser.buffered < 2000
    out += parser.feed(b"\r\nEvent: Next\r\n\r\n")
    assert [m.event for m in out] == ["Next"]
    assert parser.skipped == 1


def test_oversized_message_arriving_in_one_read_is_skipped() -> None:
    """A complete message over the limit in a single read is skipped too."""
    parser = Parser(expect_banner=False, max_message=100)
    out = parser.feed(b"Event: Big\r\nX: " + b"y" * 200 + b"\r\n\r\nEvent: Next\r\n\r\n")
    assert [m.event for m in out] == ["Next"]


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_response_follows_command_output_is_kept_as_output_lines(size: int) -> None:
    """Old-style ``Response: Follows`` output (with blank lines inside) is one message with Output lines."""
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"
        b"Channel: Location\r\n\r\nline two\r\n--END COMMAND--\r\n\r\nEvent: After\r\n\r\n"
    )
    msgs = _feed_in_chunks(Parser(expect_banner=False), data, size)
    assert msgs[0].action_id == "7"
    assert msgs[0].get_all("Output") == ("Channel: Location", "line two")
    assert msgs[1].event == "After"


def test_empty_values_and_colons_in_values_are_kept() -> None:
    """``AccountCode:`` parses as empty and a value's own colons are not split."""
    msg = parse_message("Event: X\r\nAccountCode: \r\nTime: 12:30:01")
    assert msg is not None
    assert msg.headers == (("Event", "X"), ("AccountCode", ""), ("Time", "12:30:01"))


def test_encode_action_refuses_header_injection() -> None:
    """A value containing CR/LF is refused rather than written to the wire."""
    assert encode_action("Ping", action_id="1") == b"Action: Ping\r\nActionID: 1\r\n\r\n"
    with pytest.raises(ValueError, match="line break"):
        encode_action("Login", [("Username", "x\r\nAction: Logoff")])


@pytest.mark.parametrize("size", [1, 7, 64 * 1024])
def test_every_shared_trace_parses_to_its_jsonl(traces_dir: Path, size: int) -> None:
    """Each real ``.ami`` stream parses, in any chunking, to exactly the messages of its ``.jsonl``."""
    for ami in sorted(traces_dir.glob("*.ami")):
        expected = [
            tuple(tuple(h) for h in row["headers"])
            for row in map(json.loads, ami.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines())
            if "headers" in row
        ]
        parser = Parser()
        got = [m.headers for m in _feed_in_chunks(parser, ami.read_bytes(), size)]
        assert parser.banner == "Asterisk Call Manager/11.0.0"
        assert got == expected, ami.name


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_never_raise_and_the_buffer_stays_bounded(data: bytes, size: int) -> None:
    """Hostile input in any chunking is parsed or skipped, never an exception, never an unbounded buffer."""
    parser = Parser(max_message=256)
    for i in range(0, len(data), size):
        parser.feed(data[i : i + size])
        assert parser.buffered <= 256 + 64 + 3


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40_000), max_size=30))
def test_any_split_of_a_real_trace_gives_the_same_messages(cuts: list[int]) -> None:
    """Cutting a real trace at arbitrary points (mid-character included) changes nothing."""
    data = (TRACES_DIR / "direct-answered.ami").read_bytes()
    whole = [m.headers for m in Parser().feed(data)]
    parser = Parser()
    got: list[tuple[tuple[str, str], ...]] = []
    last = 0
    for cut in sorted(set(cuts)):
        got.extend(m.headers for m in parser.feed(data[last:cut]))
        last = cut
    got.extend(m.headers for m in parser.feed(data[last:]))
    assert got == whole


def test_a_message_with_thousands_of_headers_is_cut_to_max_headers() -> None:
    """A forged event of 5,000 tiny headers keeps its first max_headers (channel fields come first)."""
    parser = Parser(expect_banner=False, max_headers=50)
    raw = b"Event: Newchannel\r\nLinkedid: 1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n"
    (message,) = parser.feed(raw)
    assert len(message.headers) == 50
    assert message.get("Linkedid") == "1.1"
    assert message.cost < 50 * 200
