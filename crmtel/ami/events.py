"""Typed AMI events: one frozen dataclass per event kind the call tracker needs.

``parse_event`` never raises: an unknown event, an uninteresting ``VarSet`` or a message missing a
required header yields None (the caller logs and skips it). ``<unknown>`` and empty values become None.
The values Asterisk C-escapes (caller and connected-line names, ``VarSet`` values) are unescaped here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias, TypeVar

from crmtel.ami.escapes import unescape_c
from crmtel.ami.protocol import Message

# Only these channel variables matter to the tracker; every other VarSet is dropped at parse time.
WANTED_VARIABLES = frozenset(
    {
        "MIXMONITOR_FILENAME",
        "CRMTEL_ROUTE_KIND",
        "CRMTEL_ROUTE_TARGET",
        "CRMTEL_ROUTE_REASON",
        "CRMTEL_ORIGINATE_ID",
        "BRIDGEPEER",
        # The manager's mobile as their phone (deploy/asterisk/extensions_crmtel_mobile.conf).
        "CRMTEL_MANAGER_EXTENSION",
        "CRMTEL_MOBILE_NUMBER",
        "CRMTEL_FOLLOWME_TO",
        "CRMTEL_MOBILE_CONFIRMED",
    }
)
_UNKNOWN = "<unknown>"
# Hostile or corrupt streams can carry absurd values; nothing we keep needs more than this.
_MAX_VALUE = 1024

Headers: TypeAlias = dict[str, str]


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """The channel snapshot AMI attaches to most events (optionally under a prefix such as ``Dest``)."""

    name: str
    uniqueid: str
    linkedid: str
    state: int | None = None
    caller_num: str | None = None
    caller_name: str | None = None
    connected_num: str | None = None
    connected_name: str | None = None
    context: str | None = None
    exten: str | None = None


@dataclass(frozen=True, slots=True)
class Newchannel:
    """A channel was created."""

    at: datetime
    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class Newstate:
    """A channel changed state (5 ringing, 6 up)."""

    at: datetime
    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class NewCallerid:
    """A channel's caller id changed."""

    at: datetime
    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class NewConnectedLine:
    """A channel's connected line changed."""

    at: datetime
    channel: ChannelInfo


@dataclass(frozen=True, slots=True)
class DialBegin:
    """``channel`` (None for originates) started dialling ``dest``."""

    at: datetime
    channel: ChannelInfo | None
    dest: ChannelInfo
    dial_string: str | None


@dataclass(frozen=True, slots=True)
class DialState:
    """Progress of a dial (RINGING, PROCEEDING, PROGRESS…)."""

    at: datetime
    channel: ChannelInfo | None
    dest: ChannelInfo
    status: str


@dataclass(frozen=True, slots=True)
class DialEnd:
    """A dial attempt finished: ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL…"""

    at: datetime
    channel: ChannelInfo | None
    dest: ChannelInfo
    status: str
    forward: str | None = None


@dataclass(frozen=True, slots=True)
class BridgeEnter:
    """A channel entered a bridge."""

    at: datetime
    channel: ChannelInfo
    bridge_id: str
    num_channels: int | None = None
    swap_uniqueid: str | None = None


@dataclass(frozen=True, slots=True)
class BridgeLeave:
    """A channel left a bridge."""

    at: datetime
    channel: ChannelInfo
    bridge_id: str
    num_channels: int | None = None


@dataclass(frozen=True, slots=True)
class Hangup:
    """A channel is gone."""

    at: datetime
    channel: ChannelInfo
    cause: int | None = None
    cause_txt: str | None = None


@dataclass(frozen=True, slots=True)
class VarSet:
    """A channel variable the tracker cares about (see ``WANTED_VARIABLES``) was set."""

    at: datetime
    channel: ChannelInfo
    variable: str
    value: str | None


@dataclass(frozen=True, slots=True)
class QueueCallerJoin:
    """The caller (``channel``) joined a queue."""

    at: datetime
    channel: ChannelInfo
    queue: str
    position: int | None = None


@dataclass(frozen=True, slots=True)
class QueueCallerLeave:
    """The caller left a queue (answered, timed out or gone)."""

    at: datetime
    channel: ChannelInfo
    queue: str


@dataclass(frozen=True, slots=True)
class QueueCallerAbandon:
    """The caller hung up while waiting in a queue."""

    at: datetime
    channel: ChannelInfo
    queue: str
    hold_time: int | None = None


@dataclass(frozen=True, slots=True)
class AgentCalled:
    """A queue offered the caller (``channel``) to a member (``dest``)."""

    at: datetime
    channel: ChannelInfo
    dest: ChannelInfo | None
    queue: str
    interface: str | None
    member_name: str | None


@dataclass(frozen=True, slots=True)
class AgentConnect:
    """A queue member answered the caller."""

    at: datetime
    channel: ChannelInfo
    dest: ChannelInfo | None
    queue: str
    interface: str | None
    member_name: str | None
    hold_time: int | None = None
    ring_time: int | None = None


@dataclass(frozen=True, slots=True)
class AgentComplete:
    """A queue call that a member answered is over."""

    at: datetime
    channel: ChannelInfo
    dest: ChannelInfo | None
    queue: str
    interface: str | None
    member_name: str | None
    talk_time: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer:
    """A queue member did not answer within the ring timeout."""

    at: datetime
    channel: ChannelInfo
    dest: ChannelInfo | None
    queue: str
    interface: str | None
    member_name: str | None
    ring_time: int | None = None


@dataclass(frozen=True, slots=True)
class BlindTransfer:
    """``transferer`` sent ``transferee`` to ``extension@context`` without consulting."""

    at: datetime
    result: str
    transferer: ChannelInfo | None
    transferee: ChannelInfo | None
    bridge_id: str | None
    context: str | None
    extension: str | None
    is_external: bool = False


@dataclass(frozen=True, slots=True)
class AttendedTransfer:
    """An attended (consultative) transfer completed; ``transfer_target`` only on newer Asterisk."""

    at: datetime
    result: str
    orig_transferer: ChannelInfo | None
    second_transferer: ChannelInfo | None
    orig_bridge_id: str | None
    second_bridge_id: str | None
    dest_type: str | None
    dest_bridge_id: str | None = None
    dest_app: str | None = None
    local_one: ChannelInfo | None = None
    local_two: ChannelInfo | None = None
    transferee: ChannelInfo | None = None
    transfer_target: ChannelInfo | None = None
    is_external: bool = False


@dataclass(frozen=True, slots=True)
class Rename:
    """A channel changed its name (masquerades)."""

    at: datetime
    uniqueid: str
    old_name: str | None
    new_name: str


@dataclass(frozen=True, slots=True)
class LocalBridge:
    """The two halves of a Local channel were linked."""

    at: datetime
    local_one: ChannelInfo
    local_two: ChannelInfo
    context: str | None
    exten: str | None
    optimization: bool = False


@dataclass(frozen=True, slots=True)
class CoreShowChannel:
    """One live channel in the answer to a ``CoreShowChannels`` action (used to resync)."""

    at: datetime
    channel: ChannelInfo
    bridge_id: str | None = None
    application: str | None = None
    application_data: str | None = None
    duration_seconds: int | None = None
    action_id: str | None = None


@dataclass(frozen=True, slots=True)
class CoreShowChannelsComplete:
    """The end of a ``CoreShowChannels`` answer."""

    at: datetime
    action_id: str | None
    list_items: int | None


@dataclass(frozen=True, slots=True)
class FullyBooted:
    """Asterisk is ready (also sent right after login); ``uptime`` seconds since it started, if it says."""

    at: datetime
    uptime: int | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Not on the wire: crmtel's own news that its AMI connection to the PBX ended at ``at``.

    Made by the client at the edge (:mod:`crmtel.ami.client`), in stream order, so the tracker can tell
    when the PBX was last seen if it turns out to have crashed (its next ``FullyBooted`` says it restarted).
    """

    at: datetime


@dataclass(frozen=True, slots=True)
class Cdr:
    """Asterisk's own CDR for one leg (cdr_manager), for cross-checking durations."""

    at: datetime
    channel: str | None
    destination_channel: str | None
    uniqueid: str | None
    source: str | None
    destination: str | None
    disposition: str | None
    duration: int | None
    billable_seconds: int | None


AmiEvent: TypeAlias = (
    Newchannel
    | Newstate
    | NewCallerid
    | NewConnectedLine
    | DialBegin
    | DialState
    | DialEnd
    | BridgeEnter
    | BridgeLeave
    | Hangup
    | VarSet
    | QueueCallerJoin
    | QueueCallerLeave
    | QueueCallerAbandon
    | AgentCalled
    | AgentConnect
    | AgentComplete
    | AgentRingNoAnswer
    | BlindTransfer
    | AttendedTransfer
    | Rename
    | LocalBridge
    | CoreShowChannel
    | CoreShowChannelsComplete
    | FullyBooted
    | Disconnected
    | Cdr
)


def _value(h: Headers, key: str) -> str | None:
    """A header's value with ``<unknown>``/empty mapped to None and absurd lengths cut."""
    value = h.get(key)
    if value is None:
        return None
    value = value.strip()
    if not value or value == _UNKNOWN:
        return None
    return value[:_MAX_VALUE]


def _escaped(h: Headers, key: str) -> str | None:
    """A value Asterisk C-escapes (caller names, VarSet values), unescaped; see :mod:`crmtel.ami.escapes`."""
    value = h.get(key)
    if value is None or "\\" not in value:
        return _value(h, key)
    return _value({key: unescape_c(value)}, key)


def _int(h: Headers, key: str) -> int | None:
    value = h.get(key)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 18:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _yes(h: Headers, key: str) -> bool:
    return (h.get(key) or "").strip().lower() in {"yes", "true", "1"}


def _channel(h: Headers, prefix: str = "") -> ChannelInfo | None:
    """The channel snapshot under ``prefix``; None when its name or Uniqueid is missing."""
    name = _value(h, prefix + "channel")
    uniqueid = _value(h, prefix + "uniqueid")
    if name is None or uniqueid is None:
        return None
    return ChannelInfo(
        name=name,
        uniqueid=uniqueid,
        linkedid=_value(h, prefix + "linkedid") or uniqueid,
        state=_int(h, prefix + "channelstate"),
        caller_num=_value(h, prefix + "calleridnum"),
        caller_name=_escaped(h, prefix + "calleridname"),
        connected_num=_value(h, prefix + "connectedlinenum"),
        connected_name=_escaped(h, prefix + "connectedlinename"),
        context=_value(h, prefix + "context"),
        exten=_value(h, prefix + "exten"),
    )


_E = TypeVar("_E")


def _simple_channel(cls: Callable[[datetime, ChannelInfo], _E]) -> Callable[[Headers, datetime], _E | None]:
    def parse(h: Headers, at: datetime) -> _E | None:
        channel = _channel(h)
        return None if channel is None else cls(at, channel)

    return parse


def _dial_begin(h: Headers, at: datetime) -> DialBegin | None:
    dest = _channel(h, "dest")
    if dest is None:
        return None
    return DialBegin(at, _channel(h), dest, _value(h, "dialstring"))


def _dial_state(h: Headers, at: datetime) -> DialState | None:
    dest = _channel(h, "dest")
    status = _value(h, "dialstatus")
    if dest is None or status is None:
        return None
    return DialState(at, _channel(h), dest, status.upper())


def _dial_end(h: Headers, at: datetime) -> DialEnd | None:
    dest = _channel(h, "dest")
    status = _value(h, "dialstatus")
    if dest is None or status is None:
        return None
    return DialEnd(at, _channel(h), dest, status.upper(), _value(h, "forward"))


def _bridge_enter(h: Headers, at: datetime) -> BridgeEnter | None:
    channel = _channel(h)
    bridge_id = _value(h, "bridgeuniqueid")
    if channel is None or bridge_id is None:
        return None
    return BridgeEnter(at, channel, bridge_id, _int(h, "bridgenumchannels"), _value(h, "swapuniqueid"))


def _bridge_leave(h: Headers, at: datetime) -> BridgeLeave | None:
    channel = _channel(h)
    bridge_id = _value(h, "bridgeuniqueid")
    if channel is None or bridge_id is None:
        return None
    return BridgeLeave(at, channel, bridge_id, _int(h, "bridgenumchannels"))


def _hangup(h: Headers, at: datetime) -> Hangup | None:
    channel = _channel(h)
    if channel is None:
        return None
    return Hangup(at, channel, _int(h, "cause"), _value(h, "cause-txt"))


def _var_set(h: Headers, at: datetime) -> VarSet | None:
    variable = (h.get("variable") or "").strip().upper()
    if variable not in WANTED_VARIABLES:
        return None
    channel = _channel(h)
    if channel is None:
        return None
    return VarSet(at, channel, variable, _escaped(h, "value"))


def _queue_caller(h: Headers) -> tuple[ChannelInfo, str] | None:
    channel = _channel(h)
    queue = _value(h, "queue")
    return None if channel is None or queue is None else (channel, queue)


def _queue_join(h: Headers, at: datetime) -> QueueCallerJoin | None:
    base = _queue_caller(h)
    return None if base is None else QueueCallerJoin(at, *base, _int(h, "position"))


def _queue_leave(h: Headers, at: datetime) -> QueueCallerLeave | None:
    base = _queue_caller(h)
    return None if base is None else QueueCallerLeave(at, *base)


def _queue_abandon(h: Headers, at: datetime) -> QueueCallerAbandon | None:
    base = _queue_caller(h)
    return None if base is None else QueueCallerAbandon(at, *base, _int(h, "holdtime"))


_Agent: TypeAlias = tuple[ChannelInfo, ChannelInfo | None, str, str | None, str | None]


def _agent(h: Headers) -> _Agent | None:
    """The caller, the member's channel, the queue, and the member's interface and name."""
    base = _queue_caller(h)
    if base is None:
        return None
    channel, queue = base
    return channel, _channel(h, "dest"), queue, _value(h, "interface"), _value(h, "membername")


def _agent_called(h: Headers, at: datetime) -> AgentCalled | None:
    base = _agent(h)
    return None if base is None else AgentCalled(at, *base)


def _agent_connect(h: Headers, at: datetime) -> AgentConnect | None:
    base = _agent(h)
    return None if base is None else AgentConnect(at, *base, _int(h, "holdtime"), _int(h, "ringtime"))


def _agent_complete(h: Headers, at: datetime) -> AgentComplete | None:
    base = _agent(h)
    return None if base is None else AgentComplete(at, *base, _int(h, "talktime"), _value(h, "reason"))


def _agent_ring_no_answer(h: Headers, at: datetime) -> AgentRingNoAnswer | None:
    base = _agent(h)
    return None if base is None else AgentRingNoAnswer(at, *base, _int(h, "ringtime"))


def _blind_transfer(h: Headers, at: datetime) -> BlindTransfer | None:
    result = _value(h, "result")
    if result is None:
        return None
    return BlindTransfer(
        at,
        result,
        _channel(h, "transferer"),
        _channel(h, "transferee"),
        _value(h, "bridgeuniqueid"),
        _value(h, "context"),
        _value(h, "extension"),
        _yes(h, "isexternal"),
    )


def _attended_transfer(h: Headers, at: datetime) -> AttendedTransfer | None:
    result = _value(h, "result")
    if result is None:
        return None
    return AttendedTransfer(
        at,
        result,
        _channel(h, "origtransferer"),
        _channel(h, "secondtransferer"),
        _value(h, "origbridgeuniqueid"),
        _value(h, "secondbridgeuniqueid"),
        _value(h, "desttype"),
        _value(h, "destbridgeuniqueid"),
        _value(h, "destapp"),
        _channel(h, "localone"),
        _channel(h, "localtwo"),
        _channel(h, "transferee"),
        _channel(h, "transfertarget"),
        _yes(h, "isexternal"),
    )


def _rename(h: Headers, at: datetime) -> Rename | None:
    uniqueid = _value(h, "uniqueid")
    new_name = _value(h, "newname")
    if uniqueid is None or new_name is None:
        return None
    return Rename(at, uniqueid, _value(h, "channel") or _value(h, "oldname"), new_name)


def _local_bridge(h: Headers, at: datetime) -> LocalBridge | None:
    one = _channel(h, "localone")
    two = _channel(h, "localtwo")
    if one is None or two is None:
        return None
    return LocalBridge(at, one, two, _value(h, "context"), _value(h, "exten"), _yes(h, "localoptimization"))


def _duration(raw: str | None) -> int | None:
    """``HH:MM:SS`` (CoreShowChannel) to seconds."""
    if raw is None:
        return None
    parts = raw.split(":")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 9 for p in parts):
        return None
    hours, minutes, seconds = (int(p) for p in parts)
    return hours * 3600 + minutes * 60 + seconds


def _core_show_channel(h: Headers, at: datetime) -> CoreShowChannel | None:
    channel = _channel(h)
    if channel is None:
        return None
    return CoreShowChannel(
        at,
        channel,
        _value(h, "bridgeid"),
        _value(h, "application"),
        _value(h, "applicationdata"),
        _duration(_value(h, "duration")),
        _value(h, "actionid"),
    )


def _core_show_complete(h: Headers, at: datetime) -> CoreShowChannelsComplete:
    return CoreShowChannelsComplete(at, _value(h, "actionid"), _int(h, "listitems"))


def _fully_booted(h: Headers, at: datetime) -> FullyBooted:
    uptime = _int(h, "uptime")
    return FullyBooted(at, uptime if uptime is not None and uptime >= 0 else None)


def _cdr(h: Headers, at: datetime) -> Cdr:
    return Cdr(
        at,
        _value(h, "channel"),
        _value(h, "destinationchannel"),
        _value(h, "uniqueid"),
        _value(h, "source"),
        _value(h, "destination"),
        _value(h, "disposition"),
        _int(h, "duration"),
        _int(h, "billableseconds"),
    )


_PARSERS: dict[str, Callable[[Headers, datetime], AmiEvent | None]] = {
    "newchannel": _simple_channel(Newchannel),
    "newstate": _simple_channel(Newstate),
    "newcallerid": _simple_channel(NewCallerid),
    "newconnectedline": _simple_channel(NewConnectedLine),
    "dialbegin": _dial_begin,
    "dialstate": _dial_state,
    "dialend": _dial_end,
    "bridgeenter": _bridge_enter,
    "bridgeleave": _bridge_leave,
    "hangup": _hangup,
    "varset": _var_set,
    "queuecallerjoin": _queue_join,
    "queuecallerleave": _queue_leave,
    "queuecallerabandon": _queue_abandon,
    "agentcalled": _agent_called,
    "agentconnect": _agent_connect,
    "agentcomplete": _agent_complete,
    "agentringnoanswer": _agent_ring_no_answer,
    "blindtransfer": _blind_transfer,
    "attendedtransfer": _attended_transfer,
    "rename": _rename,
    "localbridge": _local_bridge,
    "coreshowchannel": _core_show_channel,
    "coreshowchannelscomplete": _core_show_complete,
    "fullybooted": _fully_booted,
    "cdr": _cdr,
}


def event_name(msg: Message) -> str | None:
    """The ``Event`` header, looked up cheaply (it is almost always the first header)."""
    headers = msg.headers
    if headers and headers[0][0].lower() == "event":
        return headers[0][1]
    return msg.get("Event")


def parse_event(msg: Message, received_at: datetime) -> AmiEvent | None:
    """Turn one AMI message into a typed event, or None when it is not one the tracker uses."""
    name = event_name(msg)
    if name is None:
        return None
    key = name.strip().lower()
    parser = _PARSERS.get(key)
    if parser is None:
        return None
    if key == "varset" and not _wanted_variable(msg):
        # Most of an AMI stream is VarSet noise: drop it before building the header map.
        return None
    # Reversed so that the first of repeated headers wins, as in ``Message.get``.
    headers: Headers = {k.lower(): v for k, v in reversed(msg.headers)}
    return parser(headers, received_at)


def _wanted_variable(msg: Message) -> bool:
    # Asterisk spells it ``Variable``; the case-insensitive pass only runs for odd senders.
    for key, value in msg.headers:
        if key == "Variable":
            return value.strip().upper() in WANTED_VARIABLES
    found = msg.get("Variable")
    return found is not None and found.strip().upper() in WANTED_VARIABLES
