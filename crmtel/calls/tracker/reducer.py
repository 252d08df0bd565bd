"""The call tracker: a pure reducer ``(state, event) -> (state, effects)`` for one PBX.

Calls are keyed by Linkedid; a channel whose Linkedid changes (bridging, transfers) moves to that call,
and a call ends when its last channel is gone. Only real phones count (``Local/`` halves never answer);
an extension is a channel whose endpoint is a short number, any other named endpoint (or one listed in
``trunks``) is a trunk. Record conventions: ``caller_number`` is E.164 for outside numbers, the digits for
extensions, None for hidden numbers (``extra["caller_hidden"]``); ``caller_name`` ``<unknown>`` is None;
``dialled`` is kept as dialled; ``extra["party_number"]`` is the outside party in E.164 (caller inbound,
dialled number outbound) for CRM matching. Route variables keep the first non-empty value (the CRM's
decision, not the dialplan's later fallback). After a transfer the extension that takes the call over
becomes ``answered_by`` (``extra["transferred_from"]`` keeps the previous owner). A channel of an
unknown call (its start was lost) starts one with what is known; a recently finished call is never revived.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crmtel.ami import events as ev
from crmtel.calls.tracker import bridges, channels, dialling, queues, sync
from crmtel.calls.tracker.model import TrackerState
from crmtel.calls.tracker.tx import Effect, Tx


def _ignore(tx: Tx, event: Any) -> None:
    return None


_HANDLERS: dict[type[Any], Callable[[Tx, Any], None]] = {
    ev.Newchannel: channels.on_channel,
    ev.Newstate: channels.on_channel,
    ev.NewCallerid: channels.on_channel,
    ev.NewConnectedLine: channels.on_channel,
    ev.DialBegin: dialling.on_dial_begin,
    ev.DialState: _ignore,
    ev.DialEnd: dialling.on_dial_end,
    ev.BridgeEnter: bridges.on_bridge_enter,
    ev.BridgeLeave: bridges.on_bridge_leave,
    ev.Hangup: channels.on_hangup,
    ev.VarSet: channels.on_var_set,
    ev.QueueCallerJoin: queues.on_queue_join,
    ev.QueueCallerLeave: queues.on_queue_leave,
    ev.QueueCallerAbandon: queues.on_queue_abandon,
    ev.AgentCalled: _ignore,
    ev.AgentConnect: queues.on_agent_connect,
    ev.AgentComplete: _ignore,
    ev.AgentRingNoAnswer: _ignore,
    ev.BlindTransfer: bridges.on_blind_transfer,
    ev.AttendedTransfer: bridges.on_attended_transfer,
    ev.Rename: channels.on_rename,
    ev.LocalBridge: _ignore,
    # Resync is explicit (``resync``), so the listing itself changes nothing.
    ev.CoreShowChannel: _ignore,
    ev.CoreShowChannelsComplete: _ignore,
    ev.Cdr: _ignore,
}
# Session news: they change what the tracker knows about the PBX, not any call.
_SESSION: dict[type[Any], Callable[[TrackerState, Any], TrackerState]] = {
    ev.FullyBooted: sync.booted,
    ev.Disconnected: sync.lost,
}


def reduce(state: TrackerState, event: ev.AmiEvent) -> tuple[TrackerState, tuple[Effect, ...]]:
    """Apply one event: the new state and what happened (live call events, started/updated/ended records)."""
    handler = _HANDLERS.get(type(event))
    if handler is None:
        session = _SESSION.get(type(event))
        return (state if session is None else session(state, event)), ()
    if handler is _ignore:
        return state, ()
    tx = Tx(state, event.at)
    handler(tx, event)
    return tx.finish()
