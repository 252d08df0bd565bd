"""The built-in AMI simulator behind ``crmtel demo``: a fake PBX that keeps making realistic calls.

Every call is one of the recorded Asterisk 22 streams shipped in ``crmtel/fakepbx/data`` (the nine shared
traces), rewritten so it is a new call: fresh Uniqueids/Linkedids, channel sequence numbers and bridge
ids; a different caller number (and name) part of the time, so unknown callers and new leads show up next
to the demo clients; the waits of the recording re-timed to what real calls take (phones ring for a few
seconds to half a minute, conversations last from tens of seconds to a few minutes; the recorded calls
were only 3-13 s long); and placed at a random moment, so calls overlap. With a ``recordings_dir`` the
simulator also leaves a short WAV file where MixMonitor would have written each answered call's recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from crmtel.fakepbx.server import FakeAmiServer, Recorded
from crmtel.fakepbx.tones import tone_wav, write_recording

log = logging.getLogger(__name__)

_ID_KEYS = ("uniqueid", "linkedid")
_BRIDGE_KEYS = ("bridgeuniqueid", "bridgeid")
_ID_RE = re.compile(r"(?<![\d.])\d{9,11}\.\d+(?![\d])")
_CHANNEL_SEQ_RE = re.compile(r"((?:PJSIP|SIP|IAX2|DAHDI|Local)/[^\s,&]+?)-([0-9a-f]{8})(?=$|;|[^0-9a-f])")
# Russian mobile numbers in any of their spellings: +7 916…, 7916…, 8916…
_MOBILE_RE = re.compile(r"(?<!\d)(\+7|7|8)(9\d{9})(?!\d)")
# A caller the simulator may stand in for a known party: a Russian mobile number in E.164.
_BOOK_RE = re.compile(r"\+79\d{9}")
_FIRST = (
    "Пётр",
    "Мария",
    "Сергей",
    "Елена",
    "Дмитрий",
    "Наталья",
    "Алексей",
    "Ольга",
    "Игорь",
    "Татьяна",
    "Юрий",
)
_LAST = (
    "Иванов",
    "Кузнецов",
    "Волков",
    "Морозов",
    "Соколов",
    "Попов",
    "Новиков",
    "Фёдоров",
    "Зайцев",
    "Павлов",
)
_FEMALE = frozenset({"Мария", "Елена", "Наталья", "Ольга", "Татьяна"})
# New callers' names: Russian first and last names (a woman's surname in its feminine form), 110 of them.
_NAMES = tuple(f"{first} {last}{'а' if first in _FEMALE else ''}" for first in _FIRST for last in _LAST)


# A pause longer than this between two recorded messages is someone waiting (ringing, talking), not Asterisk
# working through one step; only such pauses are re-timed, so the order of events never changes.
_PAUSE = 0.2


@dataclass(frozen=True, slots=True)
class Pattern:
    """One recorded call: its messages with times relative to its first message."""

    name: str
    messages: tuple[Recorded, ...]

    @property
    def answered(self) -> bool:
        """Whether two parties ever talk in this call (a channel enters a bridge)."""
        return any(_event(m) == "BridgeEnter" for m in self.messages)


@dataclass(frozen=True, slots=True)
class Timing:
    """How long a re-timed call rings (in all) and talks, in seconds."""

    ring: float
    talk: float

    @classmethod
    def realistic(cls, rng: random.Random, *, answered: bool) -> Timing:
        """Ringing 4-25 s before an answer (10-40 s when nobody answers); talk mostly 20 s to 4 min."""
        if not answered:
            return cls(ring=rng.uniform(10.0, 40.0), talk=0.0)
        # Log-normal: many one-minute calls, some short ones, a few long ones (median about 70 s).
        talk = min(max(rng.lognormvariate(math.log(70.0), 0.6), 15.0), 300.0)
        return cls(ring=rng.uniform(4.0, 25.0), talk=talk)


def _event(message: Recorded) -> str:
    return message.headers[0][1] if message.headers and message.headers[0][0] == "Event" else ""


def retime(messages: Sequence[Recorded], timing: Timing) -> list[float]:
    """New times for the messages: the pauses before the first bridge share ``timing.ring``, the pauses
    after it share ``timing.talk``; steps shorter than a pause keep their recorded length."""
    waits: list[tuple[float, bool]] = []
    talking = False
    for before, message in zip((None, *messages), messages, strict=False):
        gap = 0.0 if before is None else max(0.0, message.t - before.t)
        waits.append((gap, talking))
        talking = talking or _event(message) == "BridgeEnter"
    ring_total = sum(g for g, t in waits if g > _PAUSE and not t)
    talk_total = sum(g for g, t in waits if g > _PAUSE and t)
    ring_scale = timing.ring / ring_total if ring_total else 1.0
    talk_scale = timing.talk / talk_total if talk_total else 1.0
    out: list[float] = []
    now = messages[0].t if messages else 0.0
    for i, (gap, during_talk) in enumerate(waits):
        if i:
            now += gap if gap <= _PAUSE else gap * (talk_scale if during_talk else ring_scale)
        out.append(now)
    return out


def recording_names(messages: Sequence[Recorded]) -> list[str]:
    """The file names MixMonitor was told to write (``MIXMONITOR_FILENAME``), in order, without repeats."""
    names: list[str] = []
    for message in messages:
        headers = dict(message.headers)
        if headers.get("Variable") == "MIXMONITOR_FILENAME" and headers.get("Value"):
            name = PurePosixPath(headers["Value"]).name
            if name not in names:
                names.append(name)
    return names


def load_patterns() -> list[Pattern]:
    """The recorded calls shipped with crmtel (session events such as FullyBooted left out)."""
    out: list[Pattern] = []
    folder = resources.files("crmtel.fakepbx") / "data"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".jsonl"):
            continue
        rows = [json.loads(line) for line in entry.read_text(encoding="utf-8").splitlines() if line.strip()]
        messages = [
            Recorded(float(row["t"]), tuple((str(k), str(v)) for k, v in row["headers"]))
            for row in rows
            if "headers" in row
            and row["headers"]
            and row["headers"][0][0] == "Event"
            and row["headers"][0][1] not in {"FullyBooted", "SuccessfulAuth"}
        ]
        if messages:
            t0 = messages[0].t
            out.append(
                Pattern(
                    entry.name.removesuffix(".jsonl"), tuple(Recorded(m.t - t0, m.headers) for m in messages)
                )
            )
    return out


class Rewriter:
    """Turns a recorded call into a new, distinct call; keeps counters across calls."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._seq = 0x1000
        self._serial = 1000

    def rewrite(
        self,
        pattern: Pattern,
        *,
        start: float,
        epoch: float,
        speed: float = 1.0,
        stretch: float = 1.0,
        new_caller: bool = False,
        timing: Timing | None = None,
        caller: tuple[str, str] | None = None,
    ) -> list[Recorded]:
        """The pattern as a new call starting at stream time ``start``.

        Its Uniqueids and Linkedid carry the wall-clock second the call begins, as Asterisk's carry a channel's
        creation: ``epoch`` (the stream's t=0) plus ``start`` played at ``speed`` (the stream runs that many
        times faster than the wall clock, so stream time ``start`` comes ``start / speed`` seconds after t=0).

        ``timing`` re-times its waits (see ``retime``); without it every time is scaled by ``stretch``.
        ``caller`` (a Russian mobile number in E.164 and a name) is the party on the outside line — the caller
        of an inbound call, the number dialled of an outbound one — instead of the recorded or a random one.
        """
        chosen = [caller[0][2:], caller[1]] if caller is not None and _BOOK_RE.fullmatch(caller[0]) else None

        def fresh_number() -> str:
            if chosen and chosen[0]:
                number, chosen[0] = chosen[0], ""
                return number
            return "9" + "".join(str(self.rng.randrange(10)) for _ in range(9))

        def fresh_name() -> str:
            if chosen and chosen[1]:
                name, chosen[1] = chosen[1], ""
                return name
            return self.rng.choice(_NAMES)

        ids: dict[str, str] = {}
        seqs: dict[str, str] = {}
        bridges: dict[str, str] = {}
        numbers: dict[str, str] = {}
        names: dict[str, str] = {}
        base = int(epoch + start / speed)
        for msg in pattern.messages:
            for key, value in msg.headers:
                low = key.lower()
                if low.endswith(_ID_KEYS) and _ID_RE.fullmatch(value) and value not in ids:
                    self._serial += 1
                    ids[value] = f"{base}.{self._serial}"
                elif low.endswith(_BRIDGE_KEYS) and value and value not in bridges:
                    bridges[value] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if new_caller or chosen:
            for msg in pattern.messages:
                headers = dict(msg.headers)
                found = _MOBILE_RE.search(headers.get("CallerIDNum", ""))
                if (
                    found
                    and headers.get("Channel", "").startswith("PJSIP/trunk")
                    and found.group(2) not in numbers
                ):
                    numbers[found.group(2)] = fresh_number()
                    old_name = headers.get("CallerIDName", "")
                    if old_name and old_name != "<unknown>":
                        names[old_name] = fresh_name()
            if not numbers:
                # An outbound call: the dialled number changes instead.
                for msg in pattern.messages:
                    for _, value in msg.headers:
                        for found in _MOBILE_RE.finditer(value):
                            if found.group(2) not in numbers:
                                numbers[found.group(2)] = fresh_number()

        def seq(match: re.Match[str]) -> str:
            old = match.group(2)
            if old not in seqs:
                self._seq += 1
                seqs[old] = f"{self._seq:08x}"
            return f"{match.group(1)}-{seqs[old]}"

        def value_of(key: str, value: str) -> str:
            if not value:
                return value
            if value in bridges:
                return bridges[value]
            if value in names and key.lower().endswith("name"):
                return names[value]
            if "." in value:
                value = _ID_RE.sub(lambda m: ids.get(m.group(0), m.group(0)), value)
            if "/" in value:
                value = _CHANNEL_SEQ_RE.sub(seq, value)
            if numbers:
                value = _MOBILE_RE.sub(lambda m: m.group(1) + numbers.get(m.group(2), m.group(2)), value)
            return value

        times = (
            retime(pattern.messages, timing)
            if timing is not None
            else [m.t * stretch for m in pattern.messages]
        )
        return [
            Recorded(start + t, tuple((k, value_of(k, v)) for k, v in m.headers))
            for t, m in zip(times, pattern.messages, strict=True)
        ]


class Simulator:
    """A fake AMI server that never runs out of calls; ``start``/``close`` like the real thing's peer."""

    def __init__(
        self,
        *,
        username: str = "crmtel",
        secret: str = "",
        seed: int | None = None,
        mean_gap: float = 20.0,
        speed: float = 1.0,
        chunk_size: int = 64 * 1024,
        recordings_dir: Path | None = None,
        book: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.rng = random.Random(seed)
        # The parties a call that is not from a new caller comes from (E.164 mobile number, name), drawn
        # evenly so the demo's calls spread over its whole book instead of repeating the recorded callers.
        self.book = [entry for entry in book if _BOOK_RE.fullmatch(entry[0])]
        self.patterns = load_patterns()
        self.mean_gap = mean_gap
        # Where the fake MixMonitor leaves answered calls' recordings (None: nowhere, as in most tests).
        self.recordings_dir = recordings_dir
        # Sales teams call out as much as they are called: the one outbound recording is drawn more often.
        self._weights = [4.0 if p.name.startswith("outbound") else 1.0 for p in self.patterns]
        self._tone = tone_wav() if recordings_dir is not None else b""
        self.server = FakeAmiServer(
            [],
            username=username,
            secret=secret,
            speed=speed,
            chunk_size=chunk_size,
            live=True,
            # The demo PBX keeps real time: --speed shortens its waits, its Timestamps are when events are sent.
            real_clock=True,
        )
        self.rewriter = Rewriter(self.rng)
        self.calls = 0
        self._next_start = 1.0
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The TCP port the simulator listens on."""
        return self.server.port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen and start generating calls."""
        self.server.epoch = time.time()
        await self.server.start(host, port)
        self._task = asyncio.create_task(self._generate(), name="ami-simulator")

    async def close(self) -> None:
        """Stop generating and close the server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.server.close()

    def schedule(self, count: int = 1) -> None:
        """Queue ``count`` more calls after the last one scheduled."""
        for _ in range(count):
            pattern = self.rng.choices(self.patterns, weights=self._weights)[0]
            new_caller = self.rng.random() < 0.4
            items = self.rewriter.rewrite(
                pattern,
                start=self._next_start,
                epoch=self.server.epoch,
                speed=self.server.speed or 1.0,
                new_caller=new_caller,
                timing=Timing.realistic(self.rng, answered=pattern.answered),
                caller=None if new_caller or not self.book else self.rng.choice(self.book),
            )
            if self.recordings_dir is not None and pattern.answered:
                # Missed calls leave no file, so the history shows a player only where there is something to hear.
                for name in recording_names(items):
                    write_recording(self.recordings_dir, name, self._tone)
            self.server.extend(items)
            self.calls += 1
            self._next_start += max(0.5, self.rng.expovariate(1.0 / self.mean_gap))

    async def _generate(self) -> None:
        while True:
            # Keep about half a minute of calls scheduled ahead of the clock.
            while self._next_start < self.server.clock + 30.0:
                self.schedule()
            await asyncio.sleep(1.0)


def rewrite_many(
    patterns: Sequence[Pattern], count: int, *, seed: int = 1, gap: float = 0.0
) -> list[Recorded]:
    """``count`` distinct calls made from the patterns, back to back (for benchmarks and tests)."""
    rng = random.Random(seed)
    rewriter = Rewriter(rng)
    out: list[Recorded] = []
    start = 0.0
    for i in range(count):
        pattern = patterns[i % len(patterns)]
        out.extend(rewriter.rewrite(pattern, start=start, epoch=1_800_000_000.0, new_caller=i % 3 == 0))
        start = (out[-1].t if out else start) + gap
    return out
