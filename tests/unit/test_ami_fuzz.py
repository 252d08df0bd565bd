"""Fuzzing the whole AMI path with mutated real frames (issue 13): framing → parsing → typed events → tracker.

Real recorded Asterisk streams are cut into random chunks, truncated, given duplicated and huge headers,
invalid UTF-8 and NUL bytes; no exception may escape and every buffer and state stays within its bound.
"""

from __future__ import annotations

import random
from datetime import timedelta
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmtel.ami import events as ev
from crmtel.ami.protocol import Message, Parser
from crmtel.calls.tracker import new_state, reduce
from crmtel.calls.tracker.model import TrackerState
from tests.fixtures.traces import BASE_TIME, SCENARIOS, TRACES_DIR

MAX_MESSAGE = 8 * 1024
MAX_HEADERS = 64


@cache
def _frames(scenario: str) -> tuple[bytes, ...]:
    """The trace's messages as raw frames (CRLF-terminated, as Asterisk sends them)."""
    text = (TRACES_DIR / f"{scenario}.ami").read_bytes().replace(b"\r\n", b"\n")
    return tuple(block.replace(b"\n", b"\r\n") + b"\r\n\r\n" for block in text.split(b"\n\n") if block)


def _mutate(frame: bytes, kind: int, rnd: random.Random) -> bytes:
    lines = frame.split(b"\r\n")
    body = [line for line in lines if line]
    if kind == 0:  # duplicated headers
        return b"\r\n".join([*body, *rnd.choices(body, k=rnd.randint(1, 5))]) + b"\r\n\r\n"
    if kind == 1:  # a huge header value
        return b"\r\n".join([*body, b"X-Huge: " + b"v" * rnd.randint(1, 12_000)]) + b"\r\n\r\n"
    if kind == 2:  # thousands of tiny headers
        return b"\r\n".join([*body, *(b"H%d: x" % i for i in range(rnd.randint(50, 600)))]) + b"\r\n\r\n"
    if kind == 3:  # invalid UTF-8 spliced in
        at = rnd.randrange(len(frame))
        return frame[:at] + bytes(rnd.choices([0xFF, 0xFE, 0xC3, 0x80, 0xED, 0xA0], k=3)) + frame[at:]
    if kind == 4:  # NUL bytes
        at = rnd.randrange(len(frame))
        return frame[:at] + b"\x00" * rnd.randint(1, 4) + frame[at:]
    if kind == 5:  # truncated: the rest of the frame is lost, the next one starts mid-way
        return frame[: rnd.randrange(1, len(frame))]
    if kind == 6:  # bare-LF line ends
        return frame.replace(b"\r\n", b"\n")
    return frame


@st.composite
def hostile_streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """A real trace with random frames mutated, and random chunk sizes to feed it in."""
    scenario = draw(st.sampled_from(SCENARIOS))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    rate = draw(st.floats(0.0, 0.5))
    out = bytearray(b"Asterisk Call Manager/11.0.0\r\n")
    for frame in _frames(scenario):
        out += _mutate(frame, rnd.randrange(8), rnd) if rnd.random() < rate else frame
    chunks = draw(st.lists(st.integers(1, 4096), min_size=1, max_size=30))
    return bytes(out), chunks


def _check_bounds(state: TrackerState) -> None:
    assert len(state.calls) <= state.max_live_calls
    assert all(len(call.legs) <= state.max_legs for call in state.calls.values())
    assert set(state.channels.values()) <= set(state.calls)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_streams())
def test_mutated_real_streams_never_raise_and_stay_bounded(stream: tuple[bytes, list[int]]) -> None:
    """Chunked, truncated, duplicated, huge, undecodable or NUL-laden real frames: parsed, typed and tracked
    without an exception; the parser's buffer, each message and the tracker state stay within their bounds."""
    data, chunks = stream
    parser = Parser(max_message=MAX_MESSAGE, max_headers=MAX_HEADERS)
    state = new_state("pbx1")
    pos, i = 0, 0
    at = BASE_TIME
    while pos < len(data):
        size = chunks[i % len(chunks)]
        i += 1
        messages: list[Message] = parser.feed(data[pos : pos + size])
        pos += size
        assert parser.buffered <= MAX_MESSAGE + size + 4
        for message in messages:
            assert len(message.headers) <= MAX_HEADERS
            at += timedelta(milliseconds=10)
            event = ev.parse_event(message, at)
            if event is not None:
                state, _ = reduce(state, event)
        _check_bounds(state)


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=1, max_size=20_000), st.integers(1, 512))
def test_random_bytes_between_real_frames_never_break_framing(junk: bytes, chunk: int) -> None:
    """Random bytes spliced between real frames cost at most the frames they touch: later frames still parse."""
    frames = _frames("direct-answered")
    data = b"".join(frames[:5]) + junk + b"\r\n\r\n" + b"".join(frames[5:])
    parser = Parser(max_message=MAX_MESSAGE, max_headers=MAX_HEADERS)
    got: list[Message] = []
    for start in range(0, len(data), chunk):
        got.extend(parser.feed(data[start : start + chunk]))
    events = [m.event for m in got if m.event]
    tail = [Parser(expect_banner=False).feed(f)[0].event for f in frames[-3:]]
    assert events[-3:] == tail
