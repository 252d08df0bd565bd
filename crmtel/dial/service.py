"""Click-to-call: checks a click, sends the AMI ``Originate`` on the right PBX, and reports how it went.

``start`` answers at once (the attempt is accepted or refused) and follows the attempt in a task it owns:
the result goes to the manager's page through ``notify``. ``call`` does the same and waits (the CLI).
A second click on the same number from the same phone within ``originate.dedup_seconds`` returns the
first attempt instead of dialling again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from crmtel.ami.connection import AmiError
from crmtel.ami.protocol import Message
from crmtel.config import OriginateSettings
from crmtel.dial.models import (
    DialAttempt,
    DialRefused,
    DialRequest,
    DialResult,
    DialStatus,
    dial_string,
    originate_fields,
    originate_seconds,
    outcome,
    serves,
)
from crmtel.dial.policy import DialLimits, LogWindows, RateRefusal, check_number
from crmtel.domain import Manager
from crmtel.errors import CrmtelError
from crmtel.phones import PhoneKind, is_extension, normalize

log = logging.getLogger(__name__)

# Attempts remembered for ``GET /api/dial/{id}`` and the double-click check.
_KEEP = 1000


class Originator(Protocol):
    """Sends one AMI action and waits for what completes it (``crmtel.ami.client.AmiClient``)."""

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        """The reply and the events that complete it."""
        ...


class PbxLocator(Protocol):
    """Where an extension was last seen (``crmtel.store.calls.CallRepository``)."""

    async def last_pbx_of(self, extension: str) -> str | None:
        """The PBX of the extension's latest call, if any."""
        ...


class AttemptLog(Protocol):
    """The click-to-call audit log (``crmtel.store.dial_attempts.DialAttempts``)."""

    async def add(self, attempt: DialAttempt) -> None:
        """Record an attempt."""
        ...

    async def finish(self, originate_id: str, status: str, detail: str | None) -> None:
        """How a placed attempt went."""
        ...

    async def admit(self, attempt: DialAttempt, windows: LogWindows) -> RateRefusal | None:
        """Record the attempt placed if the windows in the log have room (atomically, for every process),
        else refused; the refusal."""
        ...


Notify = Callable[[int | None, DialResult], None]


def new_originate_id() -> str:
    """A fresh attempt id: the Originate's ActionID and its ``CRMTEL_ORIGINATE_ID``."""
    return "crmtel-" + secrets.token_hex(8)


def _via(request: DialRequest) -> str | None:
    # The audit log says which attempts rang the manager's mobile instead of the desk phone.
    return f"via mobile {request.mobile}" if request.mobile is not None else None


class DialService:
    """Places click-to-call attempts on the PBXs crmtel is connected to."""

    def __init__(
        self,
        originators: Mapping[str, Originator],
        settings: Mapping[str, OriginateSettings],
        *,
        region: str = "RU",
        locator: PbxLocator | None = None,
        notify: Notify | None = None,
        clock: Callable[[], float] = time.monotonic,
        audit: AttemptLog | None = None,
        source: str = "web",
    ) -> None:
        self.originators = dict(originators)
        self.audit = audit
        self.source = source
        self.settings = dict(settings)
        self.region = region
        self.locator = locator
        self.notify = notify
        self.clock = clock
        self._recent: OrderedDict[str, tuple[float, DialResult, int | None]] = OrderedDict()
        # (pbx, extension, number) -> the attempt of the latest click and when it was clicked.
        self._by_click: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._limits = DialLimits(self.settings)

    # -- checking a click ----------------------------------------------------------------------------
    async def prepare(
        self,
        number: str,
        *,
        manager: Manager | None,
        extension: str | None = None,
        pbx: str | None = None,
        name: str | None = None,
        via_mobile: bool = False,
    ) -> DialRequest:
        """The attempt for a click, or DialRefused saying why not (someone else's phone, a bad number…).
        Every refusal leaves a line in the audit log with its reason. ``via_mobile``: the manager's mobile is
        rung first (they press 1 to accept), not their desk phone."""
        try:
            request = await self._prepare(number, manager=manager, extension=extension, pbx=pbx, name=name)
            return await self._via_mobile(request, manager) if via_mobile else request
        except DialRefused as refused:
            if not refused.audited:
                log.debug("dial refused: %s -> %r (%s)", extension, number[:40], refused.key)
                await self._log(
                    DialAttempt(
                        at=datetime.now(UTC),
                        pbx=(pbx or refused.params.get("pbx") or "")[:64],
                        source=self.source,
                        extension=(extension or next(iter(manager.extensions if manager else ()), ""))[:16],
                        number=number[:64],
                        manager_id=manager.id if manager is not None else None,
                        manager_login=manager.login if manager is not None else None,
                        decision="refused",
                        reason=refused.key[:40],
                    )
                )
            raise

    async def _prepare(
        self,
        number: str,
        *,
        manager: Manager | None,
        extension: str | None,
        pbx: str | None,
        name: str | None,
    ) -> DialRequest:
        if manager is not None:
            if extension is None:
                if not manager.extensions:
                    raise DialRefused("dial.no_extension")
                extension = manager.extensions[0]
            elif extension not in manager.extensions:
                # Heads too: everyone calls from their own phone only.
                raise DialRefused("dial.not_your_extension", 403, extension=extension)
        if extension is None or not is_extension(extension):
            raise DialRefused("dial.bad_extension", extension=(extension or "")[:20])
        phone = normalize(number, self.region)
        if phone.kind is PhoneKind.E164 and phone.e164 is not None:
            target = phone.e164
        elif phone.kind is PhoneKind.EXTENSION and phone.value is not None and phone.value != extension:
            target = phone.value
        else:
            raise DialRefused("dial.bad_number", number=number[:40])
        where = await self._pbx_for(extension, pbx)
        verdict = check_number(target, phone.kind, self.settings[where])
        if verdict is not None:
            log.warning("dial refused on %s: %s -> %s (%s)", where, extension, target, verdict.key)
            await self._log(
                DialAttempt(
                    at=datetime.now(UTC),
                    pbx=where,
                    source=self.source,
                    extension=extension,
                    number=target,
                    manager_id=manager.id if manager is not None else None,
                    manager_login=manager.login if manager is not None else None,
                    decision="refused",
                    reason=verdict.key,
                    detail=verdict.pattern,
                )
            )
            refused = DialRefused(verdict.key, 403, number=target, pbx=where)
            refused.audited = True
            raise refused
        rules = self.settings[where].dial_rules if phone.kind is PhoneKind.E164 else ()
        return DialRequest(
            originate_id=new_originate_id(),
            pbx=where,
            extension=extension,
            number=target,
            exten=dial_string(target, rules),
            name=name,
            manager_login=manager.login if manager is not None else None,
        )

    async def _via_mobile(self, request: DialRequest, manager: Manager | None) -> DialRequest:
        """The attempt rung on the manager's mobile: it must have one, and the policy must let crmtel dial it."""
        mobile = manager.mobile if manager is not None else None
        if mobile is None:
            raise DialRefused("dial.no_mobile")
        settings = self.settings[request.pbx]
        verdict = check_number(mobile, PhoneKind.E164, settings)
        if verdict is not None:
            log.warning("dial refused on %s: mobile %s (%s)", request.pbx, mobile, verdict.key)
            raise DialRefused("dial.mobile_not_allowed", 403, mobile=mobile, pbx=request.pbx)
        return replace(request, mobile=mobile, mobile_exten=dial_string(mobile, settings.dial_rules))

    async def _pbx_for(self, extension: str, pbx: str | None) -> str:
        if pbx is not None:
            if pbx not in self.originators:
                raise DialRefused("dial.unknown_pbx", pbx=pbx[:64])
            return pbx
        claimed = [name for name in self.originators if serves(self.settings[name], extension)]
        if len(claimed) == 1:
            return claimed[0]
        if len(self.originators) == 1:
            return next(iter(self.originators))
        if not self.originators:
            raise DialRefused("dial.no_pbx", 503)
        seen = await self.locator.last_pbx_of(extension) if self.locator is not None else None
        if seen in self.originators:
            return seen
        raise DialRefused("dial.pbx_unknown", extension=extension)

    # -- placing it ------------------------------------------------------------------------------------
    async def start(self, request: DialRequest, *, manager_id: int | None = None) -> DialResult:
        """Accept the attempt and follow it in the background (or return the same click's attempt)."""
        self._forget_old()
        click = (request.pbx, request.extension, request.number)
        first = self._by_click.get(click)
        earlier = self._recent.get(first[0]) if first is not None else None
        if earlier is not None and earlier[1].status.ok:
            # A double click: the first attempt is still ringing the phone (a failed one may be retried).
            return replace(earlier[1], duplicate=True)
        await self._count(request, manager_id)
        result = DialResult(request, DialStatus.CALLING, datetime.now(UTC))
        self._remember(result, manager_id)
        self._by_click[click] = (request.originate_id, self.clock())
        task = asyncio.create_task(self._follow(request, manager_id), name=f"dial-{request.originate_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return result

    async def call(self, request: DialRequest) -> DialResult:
        """Place the attempt and wait until the PBX says how it went."""
        await self._count(request, None)
        result = await self._originate(request)
        await self._finish(result)
        return result

    async def admit(self, request: DialRequest, manager_id: int | None) -> None:
        """Count and audit an attempt the manager's browser phone places itself (no Originate): the same rate
        limits and audit row as a click that rings the desk phone; DialRefused (429) past the limits."""
        await self._count(request, manager_id)

    async def _count(self, request: DialRequest, manager_id: int | None) -> None:
        # Every attempt counts, failed ones too: a failure is no reason to let a script dial again at once.
        refusal = self._limits.take(request.pbx, request.manager_login, self.clock())
        attempt = DialAttempt(
            at=datetime.now(UTC),
            pbx=request.pbx,
            source=self.source,
            extension=request.extension,
            number=request.number,
            manager_id=manager_id,
            manager_login=request.manager_login,
            dialled=request.exten,
            originate_id=request.originate_id,
            detail=_via(request),
        )
        if refusal is None:
            refusal = await self._admit_in_log(attempt)
            if refusal is None:
                return
        else:
            await self._log(replace(attempt, decision="refused", reason=refusal.key, originate_id=None))
        log.warning(
            "dial refused on %s: %s -> %s (%s)",
            request.pbx,
            request.manager_login or request.extension,
            request.number,
            refusal.key,
        )
        raise DialRefused(refusal.key, 429, retry_after=str(refusal.retry_after), pbx=request.pbx)

    async def _admit_in_log(self, attempt: DialAttempt) -> RateRefusal | None:
        # The audit log sees every node's attempts and the CLI's: the manager's and the PBX's windows hold
        # across processes (this process's own windows above only spare the database a burst).
        if self.audit is None:
            return None
        settings = self.settings[attempt.pbx]
        windows = LogWindows(
            pbx=attempt.pbx,
            manager=attempt.manager_login,
            per_manager=settings.max_per_manager,
            per_pbx=settings.max_per_pbx,
            seconds=settings.rate_seconds,
        )
        try:
            return await self.audit.admit(attempt, windows)
        except CrmtelError as err:
            log.warning("dial audit not read (%s): the windows are this process's only", err)
            await self._log(attempt)
            return None

    def get(self, originate_id: str) -> tuple[DialResult, int | None] | None:
        """A recent attempt and whose it is."""
        found = self._recent.get(originate_id)
        return (found[1], found[2]) if found is not None else None

    async def idle(self) -> None:
        """Wait until every attempt being followed has its result (tests)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def aclose(self) -> None:
        """Stop following attempts (shutdown); the calls themselves go on in the PBX."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _log(self, attempt: DialAttempt) -> None:
        if self.audit is None:
            return
        try:
            await self.audit.add(attempt)
        except CrmtelError as err:  # the click is not held hostage to the log; the daemon's log keeps it
            log.warning("dial audit not written (%s): %s", err, attempt)

    async def _finish(self, result: DialResult) -> None:
        if self.audit is None:
            return
        try:
            await self.audit.finish(result.request.originate_id, result.status.value, result.detail)
        except CrmtelError as err:
            log.warning("dial audit %s not finished (%s)", result.request.originate_id, err)

    async def _follow(self, request: DialRequest, manager_id: int | None) -> None:
        result = await self._originate(request)
        self._remember(result, manager_id)
        await self._finish(result)
        if self.notify is not None:
            try:
                self.notify(manager_id, result)
            except Exception:  # a broken page push must not lose the attempt's result in the log
                log.exception("dial %s: result not delivered", request.originate_id)

    async def _originate(self, request: DialRequest) -> DialResult:
        settings = self.settings[request.pbx]
        originator = self.originators[request.pbx]
        detail: str | None = None
        try:
            # The phone rings up to ring_seconds; the PBX answers the Originate when it is picked up.
            replies = await originator.request(
                "Originate",
                originate_fields(request, settings),
                limit=originate_seconds(request, settings) + 15,
            )
            status, detail = outcome(replies)
        except TimeoutError:
            status = DialStatus.TIMEOUT
        except AmiError as err:
            status, detail = DialStatus.UNREACHABLE, str(err)[:200]
        if detail is None:
            detail = _via(request)
        log.info(
            "dial %s: %s -> %s on %s: %s %s",
            request.originate_id,
            request.extension,
            request.exten,
            request.pbx,
            status.value,
            detail or "",
        )
        return DialResult(request, status, datetime.now(UTC), detail)

    def _remember(self, result: DialResult, manager_id: int | None) -> None:
        key = result.request.originate_id
        self._recent[key] = (self.clock(), result, manager_id)
        self._recent.move_to_end(key)
        while len(self._recent) > _KEEP:
            self._recent.popitem(last=False)

    def _forget_old(self) -> None:
        now = self.clock()
        for click, (_, clicked_at) in list(self._by_click.items()):
            window = self.settings[click[0]].dedup_seconds if click[0] in self.settings else 0.0
            if now - clicked_at > window:
                del self._by_click[click]
