"""AMI wire format: bytes in, frozen messages out; actions out as bytes. No sockets here.

The parser frames on the blank line that ends every AMI message (``\\r\\n\\r\\n``; a bare ``\\n\\n`` is
tolerated), and decodes UTF-8 only once a message is complete, so a multi-byte character split across two
TCP reads stays whole. Anything malformed is logged and skipped: the parser never raises on input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BANNER_PREFIX = b"Asterisk Call Manager/"
# A message ends with an empty line; Asterisk sends CRLF, some proxies and test tools send LF only.
_TERMINATOR = re.compile(rb"\r?\n\r?\n")
# Old-style ``Response: Follows`` command output ends with this marker (and may contain blank lines).
_END_COMMAND = re.compile(rb"--END COMMAND--\r?\n\r?\n")
_FOLLOWS = b"Response: Follows"
_FOLLOWS_HEADERS = frozenset({"response", "privilege", "actionid", "commandid", "message"})
# Real events are 1–8 KiB (a Cdr or CoreShowChannel with every field); 64 KiB is room for any of them.
DEFAULT_MAX_MESSAGE = 64 * 1024
# Past this many headers a message is cut (channel fields come first, variables last): 1,000 tiny headers
# in a 64 KiB message would otherwise cost ~200 KiB of Python objects each.
DEFAULT_MAX_HEADERS = 256
# What one header costs in memory beyond its characters (a tuple and two str objects).
_HEADER_OVERHEAD = 160
_ACTION_KEY = re.compile(r"^[A-Za-z0-9_\-()]+$")


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message: headers in wire order, repeats kept."""

    headers: tuple[tuple[str, str], ...]
    # Bytes on the wire, set by the Parser (0 for messages built in code): makes ``cost`` O(1) per event.
    wire_size: int = field(default=0, compare=False)

    @property
    def cost(self) -> int:
        """Roughly how many bytes of memory this message holds (for byte-bounded queues)."""
        if self.wire_size:
            return self.wire_size + _HEADER_OVERHEAD * len(self.headers)
        return sum(len(k) + len(v) + _HEADER_OVERHEAD for k, v in self.headers)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of header `name` (case-insensitive), else `default`."""
        wanted = name.lower()
        size = len(name)
        for key, value in self.headers:
            # The length test spares lower() on almost every header that is not the one asked for.
            if len(key) == size and (key == name or key.lower() == wanted):
                return value
        return default

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of header `name` (case-insensitive), in wire order."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)

    @property
    def event(self) -> str | None:
        """The ``Event`` header, if this is an event."""
        return self.get("Event")

    @property
    def response(self) -> str | None:
        """The ``Response`` header, if this is a response to an action."""
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        """The ``ActionID`` header, if any."""
        return self.get("ActionID")


class Parser:
    """Incremental AMI parser: ``feed(bytes)`` returns the messages completed by those bytes."""

    def __init__(
        self,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        expect_banner: bool = True,
    ) -> None:
        self.max_message = max_message
        self.max_headers = max_headers
        self.banner: str | None = None
        self._expect_banner = expect_banner
        self._buffer = bytearray()
        # Where the next terminator search starts: bytes before it were already searched.
        self._scan_from = 0
        # True while dropping the rest of an oversized message up to its terminator.
        self._skipping = False
        self.skipped = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the end of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return every message they complete, in order."""
        buf = self._buffer
        buf += data
        out: list[Message] = []
        pos = 0
        if self._expect_banner and self.banner is None:
            pos = self._take_banner()
            if self.banner is None:
                return out
        while True:
            if self._skipping:
                match = _TERMINATOR.search(buf, max(pos, self._scan_from))
                if match is None:
                    # Drop what was searched; keep the tail, where a terminator may be starting.
                    pos = max(pos, len(buf) - 3)
                    self._scan_from = pos
                    break
                pos = match.end()
                self._skipping = False
                continue
            found = self._find_end(buf, pos)
            if found is None:
                self._scan_from = max(pos, len(buf) - 20)
                if len(buf) - pos > self.max_message:
                    self.skipped += 1
                    log.warning("ami message over %d bytes: skipped", self.max_message)
                    self._skipping = True
                    # Keep the tail: the terminator may straddle the cut.
                    pos = len(buf) - 3
                    self._scan_from = pos
                    continue
                break
            start, (end, pos) = pos, found
            self._scan_from = pos
            if end - start > self.max_message:
                self.skipped += 1
                log.warning("ami message over %d bytes: skipped", self.max_message)
                continue
            message = self._decode(buf[start:end])
            if message is not None:
                out.append(message)
        if pos:
            del buf[:pos]
            self._scan_from = max(0, self._scan_from - pos)
        return out

    def _find_end(self, buf: bytearray, pos: int) -> tuple[int, int] | None:
        """Where the message at ``pos`` ends: (end of its text, start of the next), or None if incomplete."""
        scan = max(pos, self._scan_from)
        if buf.startswith(_FOLLOWS, pos):
            match = _END_COMMAND.search(buf, scan)
            return None if match is None else (match.start(), match.end())
        # Fast path: the CRLF blank line Asterisk sends, found with a plain byte search.
        end = buf.find(b"\r\n\r\n", scan)
        limit = end if end >= 0 else len(buf)
        lf_from = max(pos, scan - 2)
        if buf.find(b"\n\n", lf_from, limit) >= 0 or buf.find(b"\n\r\n", lf_from, limit) >= 0:
            # A bare-LF blank line comes first: let the regex find the earliest terminator of any kind.
            match = _TERMINATOR.search(buf, pos)
            return None if match is None else (match.start(), match.end())
        return None if end < 0 else (end, end + 4)

    def _take_banner(self) -> int:
        buf = self._buffer
        if len(buf) < len(BANNER_PREFIX) and BANNER_PREFIX.startswith(bytes(buf)):
            return 0
        if not buf.startswith(BANNER_PREFIX):
            # No banner (a proxy, or a server that skips it): parse messages straight away.
            self.banner = ""
            return 0
        end = buf.find(b"\n")
        if end < 0:
            if len(buf) > 1024:
                self.banner = ""
                log.warning("ami banner line too long: ignored")
            return 0
        self.banner = bytes(buf[:end]).decode("utf-8", "replace").strip()
        return end + 1

    def _decode(self, raw: bytes | bytearray) -> Message | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.skipped += 1
            log.warning("ami message is not valid UTF-8: undecodable bytes replaced")
            text = raw.decode("utf-8", "replace")
        message = parse_message(text)
        if message is None:
            return None
        if len(message.headers) > self.max_headers:
            log.warning("ami message with over %d headers: the rest dropped", self.max_headers)
            return Message(message.headers[: self.max_headers])  # cost then counts what was kept
        return Message(message.headers, len(raw))


def parse_message(text: str) -> Message | None:
    """Parse one framed message (without its terminator); None when it holds no header at all."""
    if text and not text.startswith("Response: Follows"):
        lines = text.split("\r\n")
        if text.count("\n") == len(lines) - 1:
            pairs = [line.partition(": ") for line in lines]
            for _, sep, _ in pairs:
                if not sep:
                    break
            else:
                return Message(tuple([(key, value) for key, _, value in pairs]))
    return _parse_slow(text)


def _parse_slow(text: str) -> Message | None:
    """Line by line, logging and skipping what is malformed."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    headers: list[tuple[str, str]] = []
    follows = text.startswith("Response: Follows")
    in_output = False
    for line in lines:
        if not line:
            continue
        if in_output:
            if line != "--END COMMAND--":
                headers.append(("Output", line))
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            if follows:
                in_output = True
                if line != "--END COMMAND--":
                    headers.append(("Output", line))
                continue
            log.warning("ami line without a header name skipped: %.80r", line)
            continue
        if follows and headers and key.lower() not in _FOLLOWS_HEADERS:
            in_output = True
            headers.append(("Output", line))
            continue
        if value.startswith(" "):
            value = value[1:]
        headers.append((key, value))
    if not headers:
        if text.strip():
            log.warning("ami message without headers skipped: %.80r", text)
        return None
    return Message(tuple(headers))


def encode_action(
    action: str, fields: Iterable[tuple[str, str]] = (), *, action_id: str | None = None
) -> bytes:
    """Encode an action; values with CR/LF are refused (they would inject headers)."""
    pairs: list[tuple[str, str]] = [("Action", action)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs.extend(fields)
    return encode_message(pairs)


def encode_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode headers as one AMI message (CRLF lines, blank line after)."""
    parts: list[str] = []
    for key, value in headers:
        if not _ACTION_KEY.match(key):
            raise ValueError(f"invalid AMI header name: {key!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"AMI header {key} value contains a line break")
        parts.append(f"{key}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
