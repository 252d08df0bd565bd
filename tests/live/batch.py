"""Independent scenarios run at once against one rig, then compared one by one.

A scenario owns its extensions, queue, DID and caller number, so scenarios that run together cannot disturb each
other; what each produced (the PBX's events and CDR, crmtel's record) is collected as plain data for the tests.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.live.cdr import CdrRow
from tests.live.crmtel_side import CallRecord
from tests.live.rig import LiveRig, Placed
from tests.live.sipp import Behaviour, Caller
from tests.live.truth import Truth, phone_of, truth_of
from tests.live.witness import AmiMessage


@dataclass(frozen=True, slots=True)
class Scenario:
    """One call of a batch: who calls which DID (or, from a desk phone, which number), and when."""

    key: str
    caller: Caller
    via: str = "trunk"  # "trunk", "trunk-http" or "phone" (a desk phone dialling)
    delay: float = 0.0


@dataclass
class Result:
    """What one scenario produced."""

    scenario: Scenario
    linkedid: str
    invite_at: float  # the caller's INVITE, from sipp's own message log (epoch seconds)
    truth: Truth
    record: CallRecord
    cdr: list[CdrRow]
    sipp_rc: int
    sipp_logs: str
    events: list[AmiMessage]  # the witness's events of this call
    extra: dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        """Everything, for an assertion message."""
        return (
            f"scenario {self.scenario.key} linkedid {self.linkedid}\n"
            f"truth: {self.truth}\nrecord: {self.record}\ncdr: {self.cdr}\nsipp rc={self.sipp_rc}"
        )


_SIPP_STAMP = re.compile(r"^-{10,} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})\s*$")


def first_invite_at(message_log: str) -> float | None:
    """The time sipp sent its first INVITE (its message log stamps each message in local time, here UTC)."""
    stamp: str | None = None
    for line in message_log.splitlines():
        match = _SIPP_STAMP.match(line)
        if match:
            stamp = match.group(1)
        elif line.startswith("INVITE ") and stamp is not None:
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").astimezone(UTC).timestamp()
    return None


async def run_batch(
    rig: LiveRig,
    scenarios: Sequence[Scenario],
    phones: Mapping[str, Behaviour],
    world: Mapping[str, Behaviour] | None = None,
    *,
    limit: float = 90.0,
) -> dict[str, Result]:
    """Play every scenario at once (each after its delay) and collect what each produced."""
    keys = [s.key for s in scenarios]
    assert len(set(keys)) == len(keys), "scenario keys must be unique"
    await rig.set_phones(phones)
    await rig.set_world(world or {})

    async def place(s: Scenario) -> Placed:
        await asyncio.sleep(s.delay)
        return await rig.place(s.caller, via=s.via)

    placed = await asyncio.gather(*(place(s) for s in scenarios))
    codes = await asyncio.gather(*(p.sipp.wait(limit) for p in placed))
    results: dict[str, Result] = {}
    for scenario, call, code in zip(scenarios, placed, codes, strict=True):
        linkedid = await rig.inbound_linkedid(call)
        record = await rig.stored(linkedid)
        truth = truth_of(rig.witness.messages, linkedid)
        cdr = await rig.wait_cdr(linkedid)
        msg_log = (rig.folder / f"{call.sipp.name}.msg.log").read_text(errors="replace")
        results[scenario.key] = Result(
            scenario=scenario,
            linkedid=linkedid,
            invite_at=first_invite_at(msg_log) or call.invite_at,
            truth=truth,
            record=record,
            cdr=cdr,
            sipp_rc=code,
            sipp_logs=call.sipp.logs(),
            events=rig.events_of(linkedid),
        )
    return results


@dataclass(frozen=True, slots=True)
class Expected:
    """What crmtel's record of a scenario must say (timings come from the PBX's own events)."""

    direction: str
    caller_number: str | None
    caller_name: str | None
    dialled: str | None
    rang: tuple[str, ...]
    answered_by: str | None
    outcome: str
    missed_reason: str | None = None
    queue: str | None = None
    route_kind: str | None = None
    route_target: str | None = None
    recorded: bool = True
    # Whose answer starts the talk: "caller" (the first channel goes up: inbound) or "trunk" (a leg dialled out).
    answer_side: str = "caller"
    # Phones rung at the same moment from different threads (Local/ members) ring in no fixed order: then the
    # record's order must be the PBX's, whatever it was this time.
    rang_any_order: bool = False


def compare(result: Result, expected: Expected) -> list[str]:
    """Every field where crmtel's record differs from what the PBX did / the scenario says (empty: all agree)."""
    r, t = result.record, result.truth
    problems: list[str] = []

    def same(name: str, got: object, want: object) -> None:
        if got != want:
            problems.append(f"{name}: crmtel {got!r}, PBX/scenario {want!r}")

    def near(name: str, got: float, want: float, tol: float = 1.0) -> None:
        if abs(got - want) > tol:
            problems.append(f"{name}: crmtel {got:.2f}, PBX {want:.2f} (more than {tol} s apart)")

    same("direction", r.direction.value, expected.direction)
    same("caller_number", r.caller_number, expected.caller_number)
    same("caller_name", r.caller_name, expected.caller_name)
    same("dialled", r.dialled, expected.dialled)
    if expected.rang_any_order:
        same("rang (as a set)", sorted(r.rang), sorted(expected.rang))
        same("rang (in the PBX's order)", tuple(r.rang), t.offered)
    else:
        same("rang", tuple(r.rang), expected.rang)
    same("answered_by", r.answered_by, expected.answered_by)
    same("outcome", r.outcome.value if r.outcome else None, expected.outcome)
    same("missed_reason", r.missed_reason.value if r.missed_reason else None, expected.missed_reason)
    same("queue", r.queue, expected.queue)
    if expected.route_kind is not None:
        same("route_kind", r.route_kind, expected.route_kind)
        same("route_target", r.route_target, expected.route_target)
    # Timings: the record against the PBX's own timestamps (timestampevents = yes).
    answer = t.caller_up if expected.answer_side == "caller" else t.trunk_answered
    near("started_at", r.started_at.timestamp(), t.started)
    if r.ended_at is not None:
        near("ended_at", r.ended_at.timestamp(), t.ended)
    if expected.outcome == "answered":
        if answer is None:
            problems.append("the PBX shows no answer")
        else:
            near("ring_seconds", r.ring_seconds, answer - t.started)
            near("talk_seconds", r.talk_seconds, t.ended - answer)
    else:
        near("ring_seconds", r.ring_seconds, t.ended - t.started)
        near("talk_seconds", r.talk_seconds, 0.0)
    # Recording: the file MixMonitor reported, and it exists.
    if expected.recorded:
        same("recording_file", r.recording_file, t.recording)
        if t.recording is None:
            problems.append("the PBX recorded nothing")
    else:
        same("recording_file", r.recording_file, None)
    # The PBX's offers and Master.csv agree with the scenario too (else the scenario did not run as meant).
    same(
        "PBX offered",
        sorted(t.offered) if expected.rang_any_order else t.offered,
        sorted(expected.rang) if expected.rang_any_order else expected.rang,
    )
    problems += _cdr_problems(result, expected)
    return problems


def _cdr_problems(result: Result, expected: Expected) -> list[str]:
    rows, r = result.cdr, result.record
    if not rows:
        return ["Master.csv has no line of this call"]
    out: list[str] = []
    # The legs of the call's first channel (the caller's, or the manager's phone that dialled out).
    mine = [row for row in rows if row.channel == result.truth.first_channel]
    answered = [row for row in mine if row.disposition == "ANSWERED" and row.answer is not None]
    if expected.outcome == "answered":
        if not answered:
            return [f"Master.csv: no answered leg of {result.truth.first_channel}: {rows}"]
        # Master.csv's own account (whole seconds): talk from the first answer to the last answered leg's end
        # (a transferred call has a leg per phone), and who had the call last. A leg's answer is when its
        # channel went up: for a call dialled out that is the far end's answer from a desk phone, but the
        # manager's own answer on a click-to-call (Master.csv has no time of the far end's answer then), so
        # there it is compared with the PBX's events instead of crmtel's record.
        first = min(row.answer for row in answered if row.answer is not None)
        talk = (max(row.end for row in answered) - first).total_seconds()
        want, who = r.talk_seconds, "crmtel"
        if expected.answer_side == "trunk" and result.truth.caller_up is not None:
            want, who = result.truth.ended - result.truth.caller_up, "the PBX's events"
        if abs(talk - want) > 1.05:
            out.append(f"Master.csv: talk {talk:.0f} s (answer to end) vs {who} {want:.2f}")
        if expected.answer_side == "caller":
            last = max(answered, key=lambda row: (row.end, row.answer or row.end))
            party = cdr_party(rows, last.dstchannel)
            if party != "trunk" and party != expected.answered_by:
                out.append(
                    f"Master.csv: the last answered leg went to {last.dstchannel} ({party}), not {expected.answered_by}"
                )
    if expected.outcome == "missed" and answered:
        out.append(
            f"Master.csv: {result.truth.first_channel} was answered on a call crmtel calls missed: {answered}"
        )
    return out


def cdr_party(rows: Sequence[CdrRow], channel: str) -> str | None:
    """The phone (extension) or "trunk" a CDR leg reached, following a Local/ pair to its other half's leg."""
    if (ext := phone_of(channel)) is not None:
        return ext
    if channel.startswith("PJSIP/trunk"):
        return "trunk"
    if channel.startswith("Local/") and channel.endswith(";1"):
        other = channel[:-1] + "2"
        legs = [row for row in rows if row.channel == other and row.disposition == "ANSWERED"]
        if legs:
            return cdr_party(rows, max(legs, key=lambda row: row.end).dstchannel)
    return None


def assert_matches(result: Result, expected: Expected) -> None:
    """``compare`` found nothing, or fail with every difference and the evidence."""
    problems = compare(result, expected)
    assert not problems, "\n".join(problems) + "\n\n" + result.describe()
