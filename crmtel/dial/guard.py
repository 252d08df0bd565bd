"""The last check before an ``Originate`` reaches a PBX, wherever it came from (this node's page, the CLI, or
another cluster node through the relay): the number must pass the PBX's patterns and the PBX's window of
attempts must have room. A refusal is answered the way the PBX would refuse (``Response: Error``), so the
asker — local or across the relay — reports it as the PBX refusing, with crmtel's reason."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import structlog

from crmtel.ami.protocol import Message
from crmtel.config import OriginateSettings
from crmtel.dial.models import DialAttempt, dial_string, serves
from crmtel.dial.policy import SlidingWindow, check_number
from crmtel.errors import CrmtelError
from crmtel.phones import PhoneKind, is_extension

log = structlog.get_logger(__name__)

NUMBER_VARIABLE = "CRMTEL_DIAL_NUMBER"

# The headers of the Originate crmtel builds (crmtel.dial.models.originate_fields), and how often each may come.
_ONCE = frozenset({"actionid", "channel", "context", "exten", "priority", "callerid", "timeout", "async"})
# The channel variables crmtel sets; anything else (a forged AGI or dialplan variable) is not crmtel's.
_VARIABLES = frozenset(
    {
        "CRMTEL_ORIGINATE_ID",
        NUMBER_VARIABLE,
        "CRMTEL_MANAGER_EXTENSION",
        "CRMTEL_MANAGER",
        "CRMTEL_OUTBOUND_CALLERID",
        "CRMTEL_MOBILE",
        "CRMTEL_MOBILE_NUMBER",
    }
)
# A variable's value: Asterisk splits a Variable header at commas, so a comma would smuggle in another variable.
_VALUE_RE = re.compile(r"^[^,\x00-\x1f\x7f]{0,120}$")
_PHONE_RE = re.compile(r"^[0-9]{2,6}$", re.ASCII)


class ActionSender(Protocol):
    """Sends one AMI action and waits for what completes it (``crmtel.ami.client.AmiClient``)."""

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        """The reply and the events that complete it."""
        ...


class AttemptAudit(Protocol):
    """The click-to-call audit log (``crmtel.store.dial_attempts.DialAttempts``)."""

    async def add(self, attempt: DialAttempt) -> None:
        """Record an attempt."""
        ...


def dialled_number(fields: Sequence[tuple[str, str]]) -> str | None:
    """The number an Originate will dial, from its ``CRMTEL_DIAL_NUMBER`` variable (None: not crmtel's)."""
    prefix = f"{NUMBER_VARIABLE}="
    for key, value in fields:
        if key.lower() == "variable" and value.startswith(prefix):
            return value[len(prefix) :]
    return None


def _refusal(action_id: str | None, why: str) -> list[Message]:
    headers = [("Response", "Error"), ("Message", why)]
    if action_id:
        headers.insert(1, ("ActionID", action_id))
    return [Message(tuple(headers))]


class GuardedSender:
    """An ActionSender for one PBX that lets an ``Originate`` through only within the PBX's policy."""

    def __init__(
        self,
        pbx: str,
        sender: ActionSender,
        settings: OriginateSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        trunks: Sequence[str] = (),
        audit: AttemptAudit | None = None,
    ) -> None:
        self.pbx = pbx
        self._trunks = frozenset(trunks)
        self._audit = audit
        self._sender = sender
        self._settings = settings
        self._window = SlidingWindow(settings.max_per_pbx, settings.rate_seconds)
        self._clock = clock
        self.refused = 0

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        """Send the action, unless it is an Originate the policy forbids (then a ``Response: Error``)."""
        if name.lower() == "originate":
            why = self._why_not(fields)
            if why is not None:
                self.refused += 1
                action_id = next((v for k, v in fields if k.lower() == "actionid"), None)
                log.warning("dial.guard_refused", pbx=self.pbx, action_id=action_id, reason=why)
                await self._log_refusal(fields, why)
                return _refusal(action_id, why)
        return await self._sender.request(name, fields, limit=limit)

    async def _log_refusal(self, fields: Sequence[tuple[str, str]], why: str) -> None:
        if self._audit is None:
            return
        variables = dict(v.partition("=")[::2] for k, v in fields if k.lower() == "variable")
        channel = next((v for k, v in fields if k.lower() == "channel"), "")
        exten = next((v for k, v in fields if k.lower() == "exten"), None)
        attempt = DialAttempt(
            at=datetime.now(UTC),
            pbx=self.pbx,
            source="guard",
            extension=(variables.get("CRMTEL_MANAGER_EXTENSION") or channel)[:16],
            number=(variables.get(NUMBER_VARIABLE) or exten or "")[:64],
            manager_login=(variables.get("CRMTEL_MANAGER") or "")[:100] or None,
            dialled=exten[:64] if exten is not None else None,
            decision="refused",
            reason="dial.guard_refused",
            detail=why[:200],
        )
        try:
            await self._audit.add(attempt)
        except CrmtelError as err:  # the refusal stands; the daemon's log keeps it
            log.warning("dial.guard_audit_failed", pbx=self.pbx, error=str(err))

    def _why_not(self, fields: Sequence[tuple[str, str]]) -> str | None:
        why = self._shape(fields)
        if why is not None:
            return f"crmtel: not an Originate crmtel builds ({why})"
        number = dialled_number(fields)
        if number is None:
            return "crmtel: an Originate without CRMTEL_DIAL_NUMBER is not crmtel's"
        kind = PhoneKind.EXTENSION if is_extension(number) else PhoneKind.E164
        if kind is PhoneKind.E164 and not (number.startswith("+") and number[1:].isdigit()):
            return "crmtel: the number is not E.164"
        exten = next((v for k, v in fields if k.lower() == "exten"), None)
        rules = self._settings.dial_rules if kind is PhoneKind.E164 else ()
        if exten != dial_string(number, rules):
            # A forged request (the relay's Redis list is writable by every node) must not dial something else.
            return "crmtel: Exten is not the number as the dial rules write it"
        if check_number(number, kind, self._settings) is not None:
            return f"crmtel: {number} is not allowed by the click-to-call policy of {self.pbx}"
        why = self._mobile_why_not(fields)
        if why is not None:
            return why
        wait = self._window.take(self.pbx, self._clock())
        if wait > 0:
            per = f"{self._settings.max_per_pbx} per {self._settings.rate_seconds:g} s"
            return f"crmtel: the click-to-call limit of {self.pbx} ({per}) is reached"
        return None

    def _mobile_why_not(self, fields: Sequence[tuple[str, str]]) -> str | None:
        """ "Via my mobile": the mobile is a number the policy lets crmtel dial, written by the dial rules."""
        variables = dict(v.partition("=")[::2] for k, v in fields if k.lower() == "variable")
        mobile = variables.get("CRMTEL_MOBILE_NUMBER")
        if mobile is None:
            return None
        if not (mobile.startswith("+") and mobile[1:].isdigit()):
            return "crmtel: the mobile is not E.164"
        if variables.get("CRMTEL_MOBILE") != dial_string(mobile, self._settings.dial_rules):
            return "crmtel: CRMTEL_MOBILE is not the mobile as the dial rules write it"
        if check_number(mobile, PhoneKind.E164, self._settings) is not None:
            return f"crmtel: the mobile {mobile} is not allowed by the click-to-call policy of {self.pbx}"
        return None

    def _phone_extension(self, channel: str, template: str | None = None) -> str | None:
        # The PBX's channel template around one of its phones' extensions: never a trunk, never Local/ elsewhere.
        head, _, tail = (template or self._settings.channel).partition("{extension}")
        if not (channel.startswith(head) and channel.endswith(tail)) or len(channel) < len(head) + len(tail):
            return None
        extension = channel[len(head) : len(channel) - len(tail)]
        if not _PHONE_RE.match(extension) or extension in self._trunks:
            return None
        if self._settings.extensions and not serves(self._settings, extension):
            return None
        return extension

    def _shape(self, fields: Sequence[tuple[str, str]]) -> str | None:
        """Why these headers are not the shape of crmtel's own Originate (None: they are)."""
        seen: dict[str, str] = {}
        variables: dict[str, str] = {}
        for key, value in fields:
            lower = key.lower()
            if lower == "variable":
                name, sep, text = value.partition("=")
                if not sep or name not in _VARIABLES or name in variables or not _VALUE_RE.match(text):
                    return f"variable {name[:40]!r}"
                variables[name] = text
            elif lower not in _ONCE or lower in seen:
                return f"header {key[:40]!r}"
            else:
                seen[lower] = value
        settings = self._settings
        via_mobile = "CRMTEL_MOBILE_NUMBER" in variables or "CRMTEL_MOBILE" in variables
        if via_mobile and not ("CRMTEL_MOBILE_NUMBER" in variables and "CRMTEL_MOBILE" in variables):
            return "CRMTEL_MOBILE without CRMTEL_MOBILE_NUMBER"
        # "Via my mobile" rings the manager's mobile through the mobile Local channel of one of the PBX's phones.
        template = settings.mobile_channel if via_mobile else settings.channel
        extension = self._phone_extension(seen.get("channel", ""), template)
        if extension is None:
            return "Channel is not a phone of this PBX"
        if seen.get("context") != settings.context or seen.get("priority") != str(settings.priority):
            return "Context/Priority"
        if variables.get("CRMTEL_MANAGER_EXTENSION") != extension:
            return "CRMTEL_MANAGER_EXTENSION is not the Channel's extension"
        if "CRMTEL_ORIGINATE_ID" not in variables:
            return "no CRMTEL_ORIGINATE_ID"
        if (
            variables.get("CRMTEL_OUTBOUND_CALLERID", settings.outgoing_callerid)
            != settings.outgoing_callerid
        ):
            return "CRMTEL_OUTBOUND_CALLERID"
        timeout = seen.get("timeout", "0")
        if not (timeout.isascii() and timeout.isdigit()):
            return "Timeout"
        return None
