"""What the PBX did with one call, read from the witness's AMI events (with Asterisk's own timestamps) alone.

Small and literal on purpose: channel names, DialBegin/DialEnd, Newstate Up, BridgeEnter/BridgeLeave, Hangup and
MixMonitor's variable — no call model, so it cannot share a mistake with crmtel's tracker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tests.live.witness import AmiMessage, unescape

_PHONE = re.compile(r"^PJSIP/(\d{2,6})-[0-9a-f]+$")
_LOCAL = re.compile(r"^Local/(\d{2,6})@[^;]+;[12]$")
_TRUNK = re.compile(r"^PJSIP/trunk(?:-http)?-[0-9a-f]+$")


def phone_of(channel: str | None) -> str | None:
    """The extension of a desk phone's channel (``PJSIP/101-0000001a`` -> ``101``)."""
    match = _PHONE.match(channel or "")
    return match.group(1) if match else None


def is_trunk(channel: str | None) -> bool:
    """Whether a channel is a trunk leg."""
    return bool(_TRUNK.match(channel or ""))


def _local_pair(channel: str) -> str | None:
    if channel.startswith("Local/") and channel[-2:] in (";1", ";2"):
        return channel[:-1] + ("2" if channel.endswith("1") else "1")
    return None


@dataclass(frozen=True, slots=True)
class Truth:
    """One call as the PBX reported it."""

    linkedid: str
    first_channel: str
    started: float  # the call's first Newchannel
    ended: float  # its last Hangup (its last event if the PBX died first)
    hung_up: bool  # whether the PBX reported the end (it does not when it is killed)
    caller_up: float | None  # the first channel answered (Newstate Up)
    offered: tuple[str, ...]  # extensions dialled, first-offer order (Local/ members by their extension)
    answered_legs: tuple[str, ...]  # extensions whose dial leg ended ANSWER, in order
    statuses: dict[str, tuple[str, ...]]  # extension -> DialStatus of each of its legs
    connected: tuple[str, ...]  # parties ever bridged with the first channel: extensions, or "trunk"
    trunk_answered: float | None  # first trunk leg dialled out that was answered (outbound, mobile)
    recording: str | None  # MIXMONITOR_FILENAME
    caller_num: str | None
    caller_name: str | None  # the first channel's first CallerIDName, unescaped
    caller_name_raw: str | None  # the same as AMI sent it (C-escaped)
    exten: str | None  # the first channel's dialled extension

    @property
    def last_connected(self) -> str | None:
        """Who the first channel was talking to last (after transfers)."""
        return self.connected[-1] if self.connected else None


def truth_of(events: Sequence[AmiMessage], linkedid: str) -> Truth:
    """The truth of one call from the witness's events (already in arrival order)."""
    mine = [m for m in events if m.get("Linkedid") == linkedid or m.event in ("BridgeEnter", "BridgeLeave")]
    first = next(m for m in mine if m.event == "Newchannel" and m.get("Linkedid") == linkedid)
    caller = first["Channel"]
    own = [m for m in mine if m.get("Linkedid") == linkedid]
    hangups = [m.timestamp for m in own if m.event == "Hangup"]
    # A PBX killed mid-call sends no Hangup: its account of the call ends with its last event.
    ended = max(hangups) if hangups else max(m.timestamp for m in own)
    first_offer: dict[str, tuple[int, bool]] = {}
    first_offer_seq: list[str] = []
    answered: list[str] = []
    statuses: dict[str, list[str]] = {}
    trunk_answered: float | None = None
    caller_up: float | None = None
    recording: str | None = None
    for m in own:
        dest = m.get("DestChannel")
        ext = phone_of(dest) or (_LOCAL.match(dest or "") or [None, None])[1]
        if m.event == "DialBegin" and ext is not None:
            # The phone's own ring counts (a Local/ member is followed to the phone it dials); a Local/ offer
            # whose phone was never dialled counts by itself.
            real = phone_of(dest) is not None
            if ext not in first_offer or (real and not first_offer[ext][1]):
                first_offer[ext] = (len(first_offer_seq), real)
                first_offer_seq.append(ext)
        if m.event == "DialEnd" and phone_of(dest) is not None:
            status = m.get("DialStatus") or ""
            statuses.setdefault(phone_of(dest) or "", []).append(status)
            if status == "ANSWER":
                answered.append(phone_of(dest) or "")
        if m.event == "Newstate" and m.get("ChannelStateDesc") == "Up":
            if m.get("Channel") == caller and caller_up is None:
                caller_up = m.timestamp
            if is_trunk(m.get("Channel")) and m.get("Channel") != caller and trunk_answered is None:
                trunk_answered = m.timestamp
        if m.event == "VarSet" and m.get("Variable") == "MIXMONITOR_FILENAME" and recording is None:
            recording = m.get("Value")
    return Truth(
        linkedid=linkedid,
        first_channel=caller,
        started=first.timestamp,
        ended=ended,
        hung_up=bool(hangups),
        caller_up=caller_up,
        offered=tuple(sorted(first_offer, key=lambda ext: first_offer[ext][0])),
        answered_legs=tuple(answered),
        statuses={k: tuple(v) for k, v in statuses.items()},
        connected=tuple(_connected(mine, caller)),
        trunk_answered=trunk_answered,
        recording=recording,
        caller_num=first.get("CallerIDNum"),
        caller_name=unescape(first.get("CallerIDName")),
        caller_name_raw=first.get("CallerIDName"),
        exten=first.get("Exten"),
    )


def _connected(events: Sequence[AmiMessage], caller: str) -> list[str]:
    """The parties bridged with ``caller`` over time (through Local/ pairs), each change appended."""
    bridges: dict[str, set[str]] = {}
    where: dict[str, str] = {}
    out: list[str] = []
    for m in events:
        channel = m.get("Channel") or ""
        bridge = m.get("BridgeUniqueid") or ""
        if m.event == "BridgeEnter":
            bridges.setdefault(bridge, set()).add(channel)
            where[channel] = bridge
        elif m.event == "BridgeLeave":
            bridges.get(bridge, set()).discard(channel)
            where.pop(channel, None)
        else:
            continue
        party = _far_party(caller, bridges, where)
        if party is not None and (not out or out[-1] != party):
            out.append(party)
    return out


def _far_party(caller: str, bridges: dict[str, set[str]], where: dict[str, str]) -> str | None:
    # Walk from the caller's bridge across Local/ pairs to the first phone or trunk leg at the other end.
    seen = {caller}
    frontier = [caller]
    while frontier:
        channel = frontier.pop()
        for peer in bridges.get(where.get(channel, ""), set()) - seen:
            seen.add(peer)
            if (ext := phone_of(peer)) is not None:
                return ext
            if is_trunk(peer):
                return "trunk"
            pair = _local_pair(peer)
            if pair is not None and pair not in seen:
                seen.add(pair)
                frontier.append(pair)
    return None
