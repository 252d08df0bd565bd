"""Why a call was missed and why a phone stopped ringing, as stable codes.

The codes are what crmtel stores, sends to pages and other nodes, prints as JSON and compares; the words for
them are only in the i18n catalogues (``page.reason.<code>``, Russian and English). Records and snapshots
written before the codes (English text, migration ``0013``) and events from a node not yet upgraded are read
as the same members.
"""

from __future__ import annotations

import enum

# The English texts crmtel stored and sent before the codes.
_LEGACY_MISSED = {
    "caller hung up while the manager's phone rang": "caller_hung_up_ringing",
    "caller hung up in queue": "abandoned_in_queue",
    "no answer": "no_answer",
}
_LEGACY_STOP = {
    "no answer": "no_answer",
    "hung up": "hung_up",
    "answered elsewhere": "answered_elsewhere",
}


class MissedReason(enum.StrEnum):
    """Why an inbound call was missed."""

    CALLER_HUNG_UP_RINGING = "caller_hung_up_ringing"
    ABANDONED_IN_QUEUE = "abandoned_in_queue"
    NO_ANSWER = "no_answer"
    BUSY = "busy"

    @classmethod
    def _missing_(cls, value: object) -> MissedReason | None:
        code = _LEGACY_MISSED.get(value) if isinstance(value, str) else None
        return cls(code) if code is not None else None


class StopReason(enum.StrEnum):
    """Why a manager's phone stopped ringing without being answered there."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    REJECTED = "rejected"
    HUNG_UP = "hung_up"
    CANCELLED = "cancelled"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    FORWARDED = "forwarded"

    @classmethod
    def _missing_(cls, value: object) -> StopReason | None:
        code = _LEGACY_STOP.get(value) if isinstance(value, str) else None
        return cls(code) if code is not None else None


# Dial statuses (Asterisk's DIALSTATUS) of a phone that did not answer.
DIAL_STOP_REASON = {
    "NOANSWER": StopReason.NO_ANSWER,
    "BUSY": StopReason.BUSY,
    "CONGESTION": StopReason.UNAVAILABLE,
    "CHANUNAVAIL": StopReason.UNAVAILABLE,
    "DONTCALL": StopReason.REJECTED,
    "TORTURE": StopReason.REJECTED,
}
# Hangup causes (Q.850) of a ringing phone's channel.
HANGUP_STOP_REASON = {
    26: StopReason.ANSWERED_ELSEWHERE,
    17: StopReason.BUSY,
    18: StopReason.NO_ANSWER,
    19: StopReason.NO_ANSWER,
    21: StopReason.REJECTED,
}
