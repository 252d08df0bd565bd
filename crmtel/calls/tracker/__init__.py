"""The call tracker: a pure reducer ``(state, event) -> (state, effects)`` for one PBX, and its state.

``reducer`` applies live events; ``sync`` snapshots, restores and resyncs calls; ``core`` holds the
transaction and the effects; ``model`` the state and how a call becomes its record; ``visits`` queue visits.
"""

from crmtel.calls.tracker.core import new_state
from crmtel.calls.tracker.live import live_now
from crmtel.calls.tracker.model import TrackerState
from crmtel.calls.tracker.reducer import reduce
from crmtel.calls.tracker.sync import restore, resync, snapshot
from crmtel.calls.tracker.tx import CallStarted, CallUpdated, Effect

__all__ = [
    "CallStarted",
    "CallUpdated",
    "Effect",
    "TrackerState",
    "live_now",
    "new_state",
    "reduce",
    "restore",
    "resync",
    "snapshot",
]
