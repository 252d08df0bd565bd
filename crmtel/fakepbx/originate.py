"""What the fake AMI server plays for an ``Originate``: what a real Asterisk 22.10.1 sent for one.

Every outcome is a click-to-call recorded on a real PBX (``data/live/click-*.jsonl``, from
``tests/live/test_live_click_to_call.py``), rewritten for the request: its phone, number, fresh channel ids, its
ActionID, and its ``Variable`` values where Asterisk set the recorded ones (on the phone's channel as it is
created, before it is dialled).

- Answered: the phone rings, is picked up (``DialEnd ANSWER``, ``OriginateResponse`` Success reason 4), the
  dialplan records and dials the number through the trunk, the client answers, they talk, the manager hangs up.
- Busy: ``DialEnd BUSY``, ``Hangup`` cause 17 and ``OriginateResponse`` Failure with ``Reason: 0`` (not 5), the
  Failure in either order; declined (603): ``DialEnd NOANSWER``, cause 21 and again ``Reason: 0``; no answer:
  the phone rings out, ``Reason: 3``, then cause 19; not registered: no channel at all, only the Failure with
  ``Reason: 0``."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from crmtel.ami.protocol import Message

Headers = tuple[tuple[str, str], ...]

_UNIQUEID_RE = re.compile(r"\b\d{10}\.\d+\b")
DATA = Path(__file__).parent / "data"
# The click-to-calls recorded on a real Asterisk 22.10.1 (tests/live/test_live_click_to_call.py).
OUTCOMES = ("answered", "busy", "no-answer", "declined", "not-registered")


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


def rewritten(request: Message, trace: Sequence[tuple[float, Headers]], ids: IdSource) -> list[Timed]:
    """A recorded click-to-call (``live/click-*.jsonl``), as if this Originate had placed it.

    The recording's phone, number, channel ids and ActionID become the request's; the recorded Originate's
    variables (set on the phone's channel as it is created, before it is dialled) become this one's.
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
        if value == recorded_extension and key.endswith(("CallerIDNum", "ConnectedLineNum", "DialString")):
            return extension
        value = _UNIQUEID_RE.sub(fresh, value)
        value = value.replace(f"PJSIP/{recorded_extension}-", f"PJSIP/{extension}-")
        value = value.replace(f"-{recorded_extension}-", f"-{extension}-")  # out-<ext>-<uniqueid>.wav
        value = value.replace(e164_of(recorded_exten), e164_of(exten))
        return value.replace(recorded_exten, exten)

    out: list[Timed] = []
    wanted = variables(request)
    phone: str | None = None  # the recorded phone channel's Uniqueid, until it is dialled
    for t, headers in trace:
        msg = Message(headers)
        if (
            phone is None
            and msg.event == "Newchannel"
            and (msg.get("Channel") or "").startswith(recorded_channel)
        ):
            phone = msg.get("Uniqueid")
        elif msg.event == "DialBegin" and msg.get("DestUniqueid") == phone:
            phone = ""
        if msg.event == "VarSet" and phone and msg.get("Uniqueid") == phone:
            # The recorded Originate's variables, in their place, become this one's.
            block = [(k, rewrite(k, v)) for k, v in _channel_block(headers)]
            for name, value in wanted:
                varset = (("Event", "VarSet"), ("Privilege", "dialplan,all"), *block, ("Variable", name))
                out.append(Timed(t, (*varset, ("Value", value))))
            wanted = []
            continue
        out.append(Timed(t, tuple((k, rewrite(k, v)) for k, v in headers)))
    return out


def recorded(outcome: str) -> list[tuple[float, Headers]]:
    """The click-to-call recorded on a real Asterisk 22.10.1 that went ``outcome`` (one of ``OUTCOMES``)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"no recorded click-to-call {outcome!r} (one of {', '.join(OUTCOMES)})")
    out: list[tuple[float, Headers]] = []
    for line in (DATA / "live" / f"click-{outcome}.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out.append((float(row["t"]), tuple((str(k), str(v)) for k, v in row["headers"])))
    return out


def pace(events: Sequence[Timed], speed: float | None) -> Iterator[tuple[float, Headers]]:
    """Each event with its delay after the previous one at ``speed`` (None: as fast as possible)."""
    last = 0.0
    for item in events:
        delay = (item.t - last) / speed if speed else 0.0
        last = item.t
        yield max(0.0, delay), item.headers
