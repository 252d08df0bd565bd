"""The last check before an ``Originate`` reaches a PBX, wherever it came from (this node's page, the CLI, or
another cluster node through the relay): the number must pass the PBX's patterns and the PBX's window of
attempts must have room. A refusal is answered the way the PBX would refuse (``Response: Error``), so the
asker — local or across the relay — reports it as the PBX refusing, with crmtel's reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from crmtel.ami.protocol import Message
from crmtel.config import OriginateSettings
from crmtel.dial.models import dial_string
from crmtel.dial.policy import SlidingWindow, check_number
from crmtel.phones import PhoneKind, is_extension

log = structlog.get_logger(__name__)

NUMBER_VARIABLE = "CRMTEL_DIAL_NUMBER"


class ActionSender(Protocol):
    """Sends one AMI action and waits for what completes it (``crmtel.ami.client.AmiClient``)."""

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        """The reply and the events that complete it."""
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
    ) -> None:
        self.pbx = pbx
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
                return _refusal(action_id, why)
        return await self._sender.request(name, fields, limit=limit)

    def _why_not(self, fields: Sequence[tuple[str, str]]) -> str | None:
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
        wait = self._window.take(self.pbx, self._clock())
        if wait > 0:
            per = f"{self._settings.max_per_pbx} per {self._settings.rate_seconds:g} s"
            return f"crmtel: the click-to-call limit of {self.pbx} ({per}) is reached"
        return None
