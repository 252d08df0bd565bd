"""What the fake AMI server plays for an ``Originate``: the events a real Asterisk 22 sends, built purely.

- Answered: the recorded ``outbound-answered`` trace (a manager's phone dialling 89161110001 and the client
  answering), rewritten with the requested extension, number and fresh channel ids, with the Originate's
  ``Variable`` values set on the manager's channel right after it appears (as Asterisk does), and the
  ``OriginateResponse`` (Success, reason 4) once the manager's phone is up.
- The manager's phone does not answer (reason 3), is busy (5) or congested (8): the channel appears, is
  dialled (``DialBegin`` with no caller channel, as for every Originate) and hangs up; then the
  ``OriginateResponse`` Failure.
- No such endpoint (reason 0): Asterisk's stand-in channel ``OutgoingSpoolFailed`` runs the context's
  ``failed`` extension and hangs up; then the Failure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from crmtel.ami.protocol import Message

Headers = tuple[tuple[str, str], ...]

# The numbers of the recorded trace that the rewrite replaces.
_TRACE_EXTENSION = "101"
_TRACE_DIALLED = "89161110001"
_TRACE_E164 = "+79161110001"
_TRACE_NAME = "Анна Смирнова"
_ID_RE = re.compile(r"\b1795\d{6}\.\d+\b")
_CHANNEL_RE = re.compile(r"PJSIP/101-")
_HANGUP_CAUSE = {
    3: ("19", "No user responding"),
    5: ("17", "User busy"),
    8: ("34", "Circuit/channel congestion"),
}
_DIAL_STATUS = {3: "NOANSWER", 5: "BUSY", 8: "CONGESTION"}


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


def failed(request: Message, reason: int, ids: IdSource) -> list[Timed]:
    """A refused Originate: the manager's phone did not answer / was busy / congested, or does not exist."""
    channel = request.get("Channel") or ""
    context = request.get("Context") or ""
    if reason == 0:
        uid = ids.next()
        block = _block("OutgoingSpoolFailed", uid, context, "failed", state=0)
        return [
            Timed(0.0, (("Event", "Newchannel"), ("Privilege", "call,all"), *block)),
            Timed(
                0.0,
                (
                    ("Event", "Newexten"),
                    ("Privilege", "dialplan,all"),
                    *block,
                    ("Extension", "failed"),
                    ("Application", "NoOp"),
                    ("AppData", ""),
                ),
            ),
            Timed(
                0.01,
                (
                    ("Event", "Hangup"),
                    ("Privilege", "call,all"),
                    *block,
                    ("Cause", "0"),
                    ("Cause-txt", "Unknown"),
                ),
            ),
            Timed(0.01, _response(request, False, 0, channel, "<null>")),
        ]
    uid = ids.next()
    name = f"{channel}-{int(uid.rsplit('.', 1)[1]):08x}"
    block = _block(name, uid, "from-phones", "s", state=0)
    dest = [(f"Dest{k}", v) for k, v in block]
    cause, text = _HANGUP_CAUSE.get(reason, ("16", "Normal Clearing"))
    ring = 0.5 if reason == 3 else 0.05
    return [
        Timed(0.0, (("Event", "Newchannel"), ("Privilege", "call,all"), *block)),
        *(
            Timed(
                0.0,
                (("Event", "VarSet"), ("Privilege", "dialplan,all"), *block, ("Variable", n), ("Value", v)),
            )
            for n, v in variables(request)
        ),
        Timed(0.0, (("Event", "DialBegin"), ("Privilege", "call,all"), *dest, ("DialString", channel))),
        Timed(
            ring,
            (
                ("Event", "DialEnd"),
                ("Privilege", "call,all"),
                *dest,
                ("DialStatus", _DIAL_STATUS.get(reason, "CHANUNAVAIL")),
            ),
        ),
        Timed(
            ring,
            (("Event", "Hangup"), ("Privilege", "call,all"), *block, ("Cause", cause), ("Cause-txt", text)),
        ),
        Timed(ring, _response(request, False, reason, channel, "<null>")),
    ]


def _block(name: str, uid: str, context: str, exten: str, *, state: int) -> list[tuple[str, str]]:
    return [
        ("Channel", name),
        ("ChannelState", str(state)),
        ("ChannelStateDesc", "Down" if state == 0 else "Up"),
        ("CallerIDNum", "<unknown>"),
        ("CallerIDName", "<unknown>"),
        ("ConnectedLineNum", "<unknown>"),
        ("ConnectedLineName", "<unknown>"),
        ("Language", "en"),
        ("AccountCode", ""),
        ("Context", context),
        ("Exten", exten),
        ("Priority", "1"),
        ("Uniqueid", uid),
        ("Linkedid", uid),
    ]


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
