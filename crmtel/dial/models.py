"""Click-to-call, pure: the number as the PBX dials it, the ``Originate`` crmtel sends, and what its answer means."""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crmtel.ami.protocol import Message
from crmtel.config import DialRule, OriginateSettings
from crmtel.errors import CrmtelError

# Text that must never reach a CallerID header: quotes and angle brackets would change its meaning.
_CALLERID_UNSAFE = re.compile(r'[\x00-\x1f"<>\\]')


class DialStatus(enum.StrEnum):
    """How a click-to-call attempt went."""

    CALLING = "calling"  # accepted by the PBX; the manager's phone is ringing
    ANSWERED = "answered"  # the manager picked up; the number is being dialled
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CONGESTED = "congested"
    REJECTED = "rejected"
    FAILED = "failed"  # no such phone, or it is not registered
    REFUSED = "refused"  # the PBX refused the action (``Response: Error``)
    UNREACHABLE = "unreachable"  # crmtel has no connection to that PBX
    TIMEOUT = "timeout"
    # "Via my mobile": the mobile answered but 1 was not pressed (voicemail, a pocket answer): no client called.
    UNCONFIRMED = "unconfirmed"

    @property
    def ok(self) -> bool:
        """Whether the attempt went (or is going) through."""
        return self in (DialStatus.CALLING, DialStatus.ANSWERED)

    @property
    def message_key(self) -> str:
        """The catalogue key (``crmtel/i18n/catalogues/*/dial.json``) that tells the manager."""
        return f"dial.status.{self.value}"


# OriginateResponse ``Reason``: the AST_CONTROL_* frame the originated channel ended with.
_REASONS = {
    0: DialStatus.FAILED,
    1: DialStatus.REJECTED,
    3: DialStatus.NO_ANSWER,
    4: DialStatus.ANSWERED,
    5: DialStatus.BUSY,
    8: DialStatus.CONGESTED,
}


# Q.850 causes of the phone's channel Hangup that name the failure (16 normal clearing, 0 unknown: no word).
_HANGUP_CAUSES = {
    17: DialStatus.BUSY,
    18: DialStatus.NO_ANSWER,
    19: DialStatus.NO_ANSWER,
    20: DialStatus.FAILED,  # subscriber absent: not registered
    21: DialStatus.REJECTED,
    34: DialStatus.CONGESTED,
    38: DialStatus.CONGESTED,
}
# Set on the originated channel by the "via my mobile" dialplan when the mobile did not take the call.
RESULT_VARIABLE = "CRMTEL_DIAL_RESULT"
_MOBILE_RESULTS = {
    "unconfirmed": DialStatus.UNCONFIRMED,
    "answer": DialStatus.UNCONFIRMED,  # the mobile answered, yet its line was never connected: no 1 pressed
    "nomobile": DialStatus.FAILED,
}
# The phone's DialEnd, when its Hangup cause said nothing.
_DIAL_STATUSES = {
    "BUSY": DialStatus.BUSY,
    "NOANSWER": DialStatus.NO_ANSWER,
    "CONGESTION": DialStatus.CONGESTED,
    "CHANUNAVAIL": DialStatus.FAILED,
}


class DialRefused(CrmtelError):
    """crmtel will not place this call; ``key`` is the catalogue message, ``params`` its values."""

    def __init__(self, key: str, status: int = 400, **params: str) -> None:
        super().__init__(f"{key} {params}" if params else key)
        self.key = key
        self.status = status
        self.params = params
        # Whether the refusal is already in the click-to-call audit log.
        self.audited = False


@dataclass(frozen=True, slots=True)
class DialRequest:
    """One click: who calls (their own extension on a PBX) whom (E.164 or an extension) and how it is dialled."""

    originate_id: str
    pbx: str
    extension: str
    number: str
    exten: str
    name: str | None = None
    manager_login: str | None = None
    # "Via my mobile": the manager's mobile (E.164) rung first instead of the desk phone, and as the PBX dials it.
    mobile: str | None = None
    mobile_exten: str | None = None


@dataclass(frozen=True, slots=True)
class DialResult:
    """Where an attempt stands; ``detail`` is the PBX's own words for a refusal."""

    request: DialRequest
    status: DialStatus
    at: datetime
    detail: str | None = None
    duplicate: bool = False


def dial_string(number: str, rules: Sequence[DialRule]) -> str:
    """The number as the PBX dials it: the first rule whose prefix matches rewrites it (``+7…`` → ``8…``)."""
    for rule in rules:
        if number.startswith(rule.prefix):
            return rule.replace + number[len(rule.prefix) :]
    return number


def serves(settings: OriginateSettings, extension: str) -> bool:
    """Whether an extension is one this PBX's ``originate.extensions`` patterns claim."""
    return any(fnmatch.fnmatchcase(extension, pattern) for pattern in settings.extensions)


def _callerid_text(value: str) -> str:
    return _CALLERID_UNSAFE.sub("", value).strip()[:60]


def originate_fields(request: DialRequest, settings: OriginateSettings) -> list[tuple[str, str]]:
    """The headers of the AMI ``Originate`` for one click (the ActionID is the attempt's id)."""
    name = _callerid_text(request.name or "") or request.number
    callerid = settings.phone_callerid.format_map({"name": name, "number": request.exten})
    channel = settings.mobile_channel if request.mobile is not None else settings.channel
    fields = [
        ("ActionID", request.originate_id),
        ("Channel", channel.format_map({"extension": request.extension})),
        ("Context", settings.context),
        ("Exten", request.exten),
        ("Priority", str(settings.priority)),
        ("CallerID", callerid),
        ("Timeout", str(originate_seconds(request, settings) * 1000)),
        ("Async", "true"),
        ("Variable", f"CRMTEL_ORIGINATE_ID={request.originate_id}"),
        ("Variable", f"CRMTEL_DIAL_NUMBER={request.number}"),
        ("Variable", f"CRMTEL_MANAGER_EXTENSION={request.extension}"),
    ]
    if request.manager_login:
        fields.append(("Variable", f"CRMTEL_MANAGER={request.manager_login}"))
    if settings.outgoing_callerid:
        fields.append(("Variable", f"CRMTEL_OUTBOUND_CALLERID={settings.outgoing_callerid}"))
    if request.mobile is not None and request.mobile_exten is not None:
        fields.append(("Variable", f"CRMTEL_MOBILE={request.mobile_exten}"))
        fields.append(("Variable", f"CRMTEL_MOBILE_NUMBER={request.mobile}"))
    return fields


# "Via my mobile": the Local channel answers only once the mobile rang (up to [mobile] ring_seconds), the prompt was
# played twice and 1 pressed; the dialplan bounds each step, this bounds the Originate around them.
MOBILE_ORIGINATE_SECONDS = 150


def originate_seconds(request: DialRequest, settings: OriginateSettings) -> int:
    """How long the PBX waits for the originated channel to answer (the desk phone, or the confirmed mobile)."""
    return MOBILE_ORIGINATE_SECONDS if request.mobile is not None else settings.ring_seconds


def outcome(replies: Sequence[Message]) -> tuple[DialStatus, str | None]:
    """What the PBX's answer to an Originate means: its Response, the OriginateResponse event, and for a
    failure the phone channel's Hangup cause and DialEnd status that follow it (see ``AmiClient.request``)."""
    if not replies:
        return DialStatus.TIMEOUT, None
    first = replies[0]
    if (first.response or "").lower() != "success":
        return DialStatus.REFUSED, (first.get("Message") or first.response or "")[:200]
    event = next((m for m in replies[1:] if m.event == "OriginateResponse"), None)
    if event is None:
        return DialStatus.CALLING, None
    if (event.get("Response") or "").lower() == "success":
        return DialStatus.ANSWERED, None
    # The end of the phone's channel says more than the Reason (Asterisk 22 gives 0 for busy and declined).
    after = replies[replies.index(event) + 1 :]
    # "Via my mobile": the dialplan's own word on the mobile (extensions_crmtel_mobile.conf) says it best.
    for message in after:
        if message.event == "VarSet" and message.get("Variable") == RESULT_VARIABLE:
            said = (message.get("Value") or "").strip()
            status = _MOBILE_RESULTS.get(said.lower()) or _DIAL_STATUSES.get(said.upper())
            if status is not None:
                return status, None
    for message in after:
        if message.event == "Hangup":
            status = _HANGUP_CAUSES.get(_cause(message.get("Cause")))
            if status is not None:
                return status, None
    for message in after:
        if message.event == "DialEnd":
            status = _DIAL_STATUSES.get((message.get("DialStatus") or "").upper())
            if status is not None:
                return status, None
    return _REASONS.get(_cause(event.get("Reason")), DialStatus.FAILED), None


def _cause(value: str | None) -> int:
    try:
        return int(value or "0")
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class DialAttempt:
    """One line of the click-to-call audit log: placed or refused (``reason``: the refusal's catalogue key)."""

    at: datetime
    pbx: str
    source: str  # "web", "cli", "guard" (an Originate the PBX's guard refused, e.g. forged on the relay) or
    # "webphone" (an outside call of a browser phone the PBX asked about over FastAGI and crmtel refused)
    extension: str
    number: str
    manager_id: int | None = None
    manager_login: str | None = None
    dialled: str | None = None
    originate_id: str | None = None
    decision: str = "placed"  # or "refused"
    reason: str | None = None
    status: str | None = None
    detail: str | None = None
