"""What the fake AMI server plays for an ``Originate``: the events a real Asterisk 22 sends, built purely.

- Answered: the recorded ``outbound-answered`` trace (a manager's phone dialling 89161110001 and the client
  answering), rewritten with the requested extension, number and fresh channel ids, with the Originate's
  ``Variable`` values set on the manager's channel right after it appears (as Asterisk does), and the
  ``OriginateResponse`` (Success, reason 4) once the manager's phone is up.
- Failed: the attempt recorded on a real Asterisk 22.10.1 (``data/live/click-*.jsonl``), rewritten the same
  way. Busy: ``DialEnd BUSY``, ``Hangup`` cause 17 and ``OriginateResponse`` Failure with ``Reason: 0`` (not 5),
  the Failure in either order; declined (603): ``DialEnd NOANSWER``, cause 21 and again ``Reason: 0``; no
  answer: the phone rings out, ``Reason: 3``, then cause 19; not registered: no channel at all, only the
  Failure with ``Reason: 0``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from crmtel.ami.protocol import Message

Headers = tuple[tuple[str, str], ...]

# The numbers of the recorded trace that the rewrite replaces.
_TRACE_EXTENSION = "101"
_TRACE_DIALLED = "89161110001"
_TRACE_E164 = "+79161110001"
_TRACE_NAME = "Анна Смирнова"
_ID_RE = re.compile(r"\b1795\d{6}\.\d+\b")
_CHANNEL_RE = re.compile(r"PJSIP/101-")
_UNIQUEID_RE = re.compile(r"\b\d{10}\.\d+\b")
DATA = Path(__file__).parent / "data"
# The failed attempts recorded on a real Asterisk 22.10.1 (tests/live/test_live_click_to_call.py).
FAILURES = ("busy", "no-answer", "declined", "not-registered")


@dataclass(frozen=True, slots=True)
class Timed:
    """One event to send, ``t`` seconds after the Originate was accepted."""

    t: float
    headers: Headers


def extension_of(channel: str) -> str:
    """``PJSIP/101`` or ``Local/101@from-internal`` -> ``101``."""
    rest = channel.partition("/")[2] or channel
    return rest.split("@", 1)[0].split("-", 1)[0]


def e164_of(exten: str) -> str:
    """The number the far end has, for the trunk side of the rewritten trace (Russian national format aware)."""
    digits = "".join(ch for ch in exten if ch.isdigit())
    if exten.startswith("+"):
        return "+" + digits
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    return "+" + digits if len(digits) > 6 else digits


def variables(request: Message) -> list[tuple[str, str]]:
    """The ``Variable`` headers of an Originate (repeated, or comma-separated), as name/value pairs."""
    out: list[tuple[str, str]] = []
    for key, value in request.headers:
        if key.lower() != "variable":
            continue
        for item in value.split(","):
            name, sep, val = item.partition("=")
            if sep and name.strip():
                out.append((name.strip(), val))
    return out


class IdSource:
    """Fresh Uniqueids for rewritten traces (a replayed call must never reuse a finished Linkedid)."""

    def __init__(self, base: int) -> None:
        self._base = base
        self._seq = itertools.count(1)

    def next(self) -> str:
        """A new ``EPOCH.N`` id."""
        return f"{self._base}.{next(self._seq)}"


def _party(key: str, value: str, extension: str, shown: str) -> str | None:
    """The recorded manager's number and name, as this Originate's extension and CallerID name."""
    if key in ("CallerIDNum", "ConnectedLineNum") and value == _TRACE_EXTENSION:
        return extension
    if key in ("CallerIDName", "ConnectedLineName") and value == _TRACE_NAME:
        return shown
    return None


def _channel_block(headers: Headers) -> list[tuple[str, str]]:
    names = {"Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum"}
    names |= {"ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid"}
    names.add("Linkedid")
    return [(k, v) for k, v in headers if k in names]


def _response(request: Message, ok: bool, reason: int, channel: str, uniqueid: str) -> Headers:
    aid = request.action_id
    return (
        ("Event", "OriginateResponse"),
        ("Privilege", "call,all"),
        *((("ActionID", aid),) if aid is not None else ()),
        ("Response", "Success" if ok else "Failure"),
        ("Channel", channel),
        ("Context", request.get("Context") or ""),
        ("Exten", request.get("Exten") or ""),
        ("Application", ""),
        ("Data", ""),
        ("Reason", str(reason)),
        ("Uniqueid", uniqueid),
        ("CallerIDNum", "<unknown>"),
        ("CallerIDName", "<unknown>"),
    )


def answered(request: Message, trace: Sequence[tuple[float, Headers]], ids: IdSource) -> list[Timed]:
    """The recorded outbound call, as if this Originate had placed it (see the module docstring)."""
    channel = request.get("Channel") or ""
    extension = extension_of(channel)
    exten = request.get("Exten") or ""
    e164 = e164_of(exten)
    # The originated phone carries the Originate's CallerID (what it displayed), not the recording's name.
    shown = (request.get("CallerID") or "").split("<", 1)[0].strip().strip('"') or "<unknown>"
    mapping: dict[str, str] = {}

    def fresh(match: re.Match[str]) -> str:
        return mapping.setdefault(match.group(0), ids.next())

    def rewrite(value: str) -> str:
        value = _ID_RE.sub(fresh, value)
        value = _CHANNEL_RE.sub(f"PJSIP/{extension}-", value)
        value = value.replace(_TRACE_E164, e164).replace(_TRACE_DIALLED, exten)
        return value.replace(_TRACE_E164[1:], e164.lstrip("+"))

    out: list[Timed] = []
    origin: str | None = None
    t0 = next((t for t, h in trace if _is_call_event(h)), 0.0)
    for t, headers in trace:
        if not _is_call_event(headers):
            continue
        new = tuple((k, _party(k, v, extension, shown) or rewrite(v)) for k, v in headers)
        out.append(Timed(max(0.0, t - t0), new))
        msg = Message(new)
        if origin is None and msg.event == "Newchannel":
            origin = msg.get("Uniqueid") or ""
            block = _channel_block(new)
            for name, value in variables(request):
                out.append(
                    Timed(
                        out[-1].t,
                        (
                            ("Event", "VarSet"),
                            ("Privilege", "dialplan,all"),
                            *block,
                            ("Variable", name),
                            ("Value", value),
                        ),
                    )
                )
            out.append(Timed(out[-1].t, _response(request, True, 4, msg.get("Channel") or channel, origin)))
    return out


def failed(request: Message, trace: Sequence[tuple[float, Headers]], ids: IdSource) -> list[Timed]:
    """A recorded failed attempt (``live/click-*.jsonl``), as if this Originate had made it.

    The recording's phone, number, channel ids and ActionID become the request's; the Originate's variables
    replace the recorded ones where Asterisk set them (on the phone's channel, right after it appeared).
    """
    response = next(Message(h) for _, h in trace if Message(h).event == "OriginateResponse")
    recorded_channel = response.get("Channel") or ""
    recorded_extension = extension_of(recorded_channel)
    recorded_exten = response.get("Exten") or ""
    channel = request.get("Channel") or ""
    extension = extension_of(channel)
    exten = request.get("Exten") or ""
    mapping: dict[str, str] = {}

    def fresh(match: re.Match[str]) -> str:
        return mapping.setdefault(match.group(0), ids.next())

    def rewrite(key: str, value: str) -> str:
        if key == "ActionID":
            return request.action_id or ""
        if key == "Channel" and value == recorded_channel:
            return channel
        if key == "Context" and value == response.get("Context"):
            return request.get("Context") or value
        if value == recorded_extension and key.endswith(("CallerIDNum", "DialString")):
            return extension
        value = _UNIQUEID_RE.sub(fresh, value)
        value = value.replace(f"PJSIP/{recorded_extension}-", f"PJSIP/{extension}-")
        value = value.replace(e164_of(recorded_exten), e164_of(exten))
        return value.replace(recorded_exten, exten)

    out: list[Timed] = []
    wanted = variables(request)
    for t, headers in trace:
        if Message(headers).event == "VarSet":
            # The recorded Originate's variables, in their place, become this one's.
            block = [(k, rewrite(k, v)) for k, v in _channel_block(headers)]
            for name, value in wanted:
                varset = (("Event", "VarSet"), ("Privilege", "dialplan,all"), *block, ("Variable", name))
                out.append(Timed(t, (*varset, ("Value", value))))
            wanted = []
            continue
        out.append(Timed(t, tuple((k, rewrite(k, v)) for k, v in headers)))
    return out


def failure_trace(outcome: str) -> list[tuple[float, Headers]]:
    """The recorded failed attempt named ``outcome`` (one of ``FAILURES``)."""
    if outcome not in FAILURES:
        raise ValueError(f"no recorded click-to-call failure {outcome!r} (one of {', '.join(FAILURES)})")
    out: list[tuple[float, Headers]] = []
    for line in (DATA / "live" / f"click-{outcome}.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append((float(row["t"]), tuple((str(k), str(v)) for k, v in row["headers"])))
    return out


def _is_call_event(headers: Headers) -> bool:
    # The trace's session events (FullyBooted, SuccessfulAuth) belong to the recorder's login, not the call.
    first = headers[0] if headers else ("", "")
    return first[0] == "Event" and first[1] not in ("FullyBooted", "SuccessfulAuth")


def pace(events: Sequence[Timed], speed: float | None) -> Iterator[tuple[float, Headers]]:
    """Each event with its delay after the previous one at ``speed`` (None: as fast as possible)."""
    last = 0.0
    for item in events:
        delay = (item.t - last) / speed if speed else 0.0
        last = item.t
        yield max(0.0, delay), item.headers
