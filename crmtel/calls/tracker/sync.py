"""Keeping the tracker right across gaps: per-call snapshots for restarts, and resync after a reconnect.

A lost AMI connection is an event too (``Disconnected``, made by the client at the edge). The next login's
``FullyBooted`` carries the PBX's Uptime: if the PBX started again while crmtel was away (killed, crashed,
restarted), every call it had died with it, so the calls the resync then finds gone end when the
connection was lost, not when crmtel logged in again. If the PBX stayed up (a network cut, a frozen
process), a call gone from its listing ended somewhere in the gap and keeps the resync's time (the CDR
amender may know better). A PBX that sends no Uptime (an AMI user without the ``system`` class) is never
taken for restarted.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime, timedelta
from typing import Any

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind
from crmtel.calls.tracker import visits
from crmtel.calls.tracker.core import answer_by_bridge, attach, end_call, unbridge
from crmtel.calls.tracker.model import Call, Leg, TrackerState
from crmtel.calls.tracker.tx import Effect, Tx
from crmtel.domain import CallRingStopped, Direction, MissedReason, StopReason

SNAPSHOT_VERSION = 1
# Two logins to the same running PBX derive its start from whole seconds of Uptime (and, without
# timestampevents, from receive times): more apart than this means it started again in between.
RESTART_TOLERANCE = timedelta(seconds=2)
_DATETIME_FIELDS = frozenset({"started_at", "answered_at"})
_BOOL_FIELDS = frozenset({"caller_hidden", "in_queue", "transfer_pending", "announced", "confirm_pending"})


def snapshot(state: TrackerState, linkedid: str) -> dict[str, Any] | None:
    """A JSON-serialisable picture of one live call (for ``calls.live_state``), or None if unknown."""
    call = state.calls.get(linkedid)
    if call is None:
        return None
    data: dict[str, Any] = {"v": SNAPSHOT_VERSION}
    for f in fields(Call):
        value = getattr(call, f.name)
        if f.name == "legs":
            value = [
                {
                    "uniqueid": leg.uniqueid,
                    "name": leg.name,
                    "kind": leg.kind.value,
                    "extension": leg.extension,
                    "up": leg.up,
                    "bridge": leg.bridge,
                }
                for leg in value.values()
            ]
        elif f.name == "ringing":
            value = dict(value)
        elif f.name == "rang":
            value = list(value)
        elif f.name == "queue_visits":
            value = visits.encode(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Direction | MissedReason | LegKind):
            value = value.value
        data[f.name] = value
    return data


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"snapshot field {key!r} is not a string")
    return value


def _decode_call(data: dict[str, Any]) -> Call:
    if data.get("v") != SNAPSHOT_VERSION:
        raise ValueError("unknown snapshot version")
    values: dict[str, Any] = {}
    for f in fields(Call):
        if f.name not in data:
            continue
        raw = data[f.name]
        if f.name == "legs":
            legs: dict[str, Leg] = {}
            for item in raw:
                leg = Leg(
                    uniqueid=str(item["uniqueid"]),
                    name=str(item["name"]),
                    kind=LegKind(item["kind"]),
                    extension=_opt_str(item, "extension"),
                    up=bool(item.get("up", False)),
                    bridge=_opt_str(item, "bridge"),
                )
                legs[leg.uniqueid] = leg
            values["legs"] = legs
        elif f.name == "ringing":
            values["ringing"] = {str(k): str(v) for k, v in dict(raw).items()}
        elif f.name == "rang":
            values["rang"] = tuple(str(x) for x in raw)
        elif f.name == "queue_visits":
            values["queue_visits"] = visits.decode(raw)
        elif f.name in _DATETIME_FIELDS:
            values[f.name] = None if raw is None else datetime.fromisoformat(str(raw))
        elif f.name == "direction":
            values[f.name] = None if raw is None else Direction(raw)
        elif f.name == "unanswered_reason":
            values[f.name] = None if raw is None else MissedReason(raw)
        elif f.name == "origin_kind":
            values[f.name] = None if raw is None else LegKind(raw)
        elif f.name in _BOOL_FIELDS:
            values[f.name] = bool(raw)
        else:
            values[f.name] = _opt_str(data, f.name)
    if not isinstance(values.get("linkedid"), str) or not isinstance(values.get("started_at"), datetime):
        raise ValueError("snapshot lacks linkedid or started_at")
    return Call(**values)


def restore(state: TrackerState, data: dict[str, Any]) -> TrackerState:
    """Put a call saved by ``snapshot`` back into the state; raises ValueError for a malformed snapshot."""
    try:
        call = _decode_call(data)
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"malformed call snapshot: {err}") from err
    calls = {**state.calls, call.linkedid: call}
    channels = dict(state.channels)
    bridges = dict(state.bridges)
    for uid, leg in call.legs.items():
        channels[uid] = call.linkedid
        if leg.bridge is not None:
            members = bridges.get(leg.bridge, ())
            if uid not in members:
                bridges[leg.bridge] = (*members, uid)
    return replace(state, calls=calls, channels=channels, bridges=bridges)


def lost(state: TrackerState, event: ev.Disconnected) -> TrackerState:
    """The AMI connection ended at ``event.at`` (the PBX was last seen then)."""
    # Once the PBX is known to have restarted, its calls died at the first loss, whatever drops follow.
    return replace(state, lost_at=state.lost_at if state.restarted else event.at)


def booted(state: TrackerState, event: ev.FullyBooted) -> TrackerState:
    """The PBX says how long it has been up: note when it started, and whether that was since the loss."""
    if event.uptime is None:
        return state
    started = event.at - timedelta(seconds=event.uptime)
    restarted = state.restarted
    if state.lost_at is not None and not restarted:
        if state.booted_at is not None:
            restarted = abs(started - state.booted_at) > RESTART_TOLERANCE
        else:
            restarted = started > state.lost_at - RESTART_TOLERANCE
    return replace(state, booted_at=started, restarted=restarted)


def resync(
    state: TrackerState, channels: list[ev.CoreShowChannel], at: datetime
) -> tuple[TrackerState, tuple[Effect, ...]]:
    """Reconcile with the PBX's live channel list: close calls whose channels are gone, adopt unknown ones.

    Calls of a PBX that restarted since the connection was lost end at that loss; others at ``at``.
    """
    ended_at = at
    if state.restarted and state.lost_at is not None and state.lost_at <= at:
        ended_at = state.lost_at
    if state.lost_at is not None or state.restarted:
        # The gap is closed by this listing.
        state = replace(state, lost_at=None, restarted=False)
    closing = Tx(state, ended_at)
    present = {item.channel.uniqueid: item for item in channels}
    for linkedid in list(state.calls):
        call = closing.call(linkedid)
        if call is None:
            continue
        gone = [uid for uid in call.legs if uid not in present]
        if gone or not call.legs:
            _drop_legs(closing, call, gone)
    state, closed = closing.finish()
    tx = Tx(state, at)
    # Oldest channels first, so a call's originating channel is usually seen before its other legs.
    ordered = sorted(channels, key=lambda item: (-(item.duration_seconds or 0), item.channel.uniqueid))
    adopted: dict[str, int] = {}
    for item in ordered:
        ch = item.channel
        if tx.linkedid_of(ch.uniqueid) is not None:
            continue
        is_new = tx.call(ch.linkedid) is None
        call = attach(tx, ch, create=True)
        if call is None:
            continue
        if is_new or ch.linkedid in adopted:
            adopted[ch.linkedid] = max(adopted.get(ch.linkedid, 0), item.duration_seconds or 0)
        call = _adopt_details(tx, call, item)
        tx.put(call)
    for linkedid, seconds in adopted.items():
        call = tx.call(linkedid)
        if call is None:
            continue
        call = replace(call, started_at=at - timedelta(seconds=seconds))
        for bridge_id in {leg.bridge for leg in call.legs.values() if leg.bridge is not None}:
            members = tx.bridge_members(bridge_id)
            if call.answered_by is None and len(members) >= 2:
                call = answer_by_bridge(tx, call, members)
        tx.put(call)
    state, adopted_effects = tx.finish()
    return state, closed + adopted_effects


def _drop_legs(tx: Tx, call: Call, gone: list[str]) -> None:
    ringing = dict(call.ringing)
    for uid in gone:
        extension = ringing.pop(uid, None)
        if extension is not None:
            tx.emit(
                CallRingStopped(tx.cid(call.linkedid), extension, StopReason.HUNG_UP, call.answered_by, tx.at)
            )
        leg = call.legs[uid]
        if leg.bridge is not None:
            unbridge(tx, leg.bridge, uid)
        tx.index(uid, None)
    legs = {k: v for k, v in call.legs.items() if k not in gone}
    changes: dict[str, Any] = {"legs": legs, "ringing": ringing}
    if call.linkedid in gone and call.answered_by is None:
        # The caller vanished while we were away: judge by where the call was when we last saw it.
        if call.in_queue:
            changes["unanswered_reason"] = MissedReason.ABANDONED_IN_QUEUE
            changes["in_queue"] = False
        elif call.ringing:
            changes["unanswered_reason"] = MissedReason.CALLER_HUNG_UP_RINGING
    call = replace(call, **changes)
    tx.put(call)
    if not legs:
        end_call(tx, call)


def _adopt_details(tx: Tx, call: Call, item: ev.CoreShowChannel) -> Call:
    """What a channel listing tells about a channel we did not know: its bridge, and a caller in a queue."""
    uid = item.channel.uniqueid
    leg = call.legs.get(uid)
    if leg is None:
        return call
    if item.bridge_id is not None:
        members = tx.bridge_members(item.bridge_id)
        if uid not in members:
            tx.set_bridge(item.bridge_id, (*members, uid))
        leg = replace(leg, bridge=item.bridge_id, up=True)
        call = replace(call, legs={**call.legs, uid: leg})
    extension = leg.extension
    if (
        leg.kind is LegKind.EXTENSION
        and extension is not None
        and uid != call.linkedid
        and extension != call.placed_by
        and extension not in call.rang
    ):
        # A phone already on the call when crmtel came back was offered it while crmtel was away.
        call = replace(call, rang=(*call.rang, extension))
    application = (item.application or "").lower()
    if uid == call.linkedid and application == "queue" and call.answered_by is None:
        queue = (item.application_data or "").split(",", 1)[0].strip() or None
        call = replace(call, queue=queue[:64] if queue else call.queue, in_queue=True)
        if call.queue is not None:
            # The wait began no later than the channel did: the best start we have for a caller found waiting.
            joined_at = tx.at - timedelta(seconds=item.duration_seconds or 0)
            call, queued = visits.joined(tx.state.pbx, call, call.queue, joined_at)
            if queued is not None:
                tx.emit(queued)
    return call
