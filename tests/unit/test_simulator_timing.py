"""The simulator re-times the recorded calls to real lengths, and the tracker measures exactly those lengths."""

from __future__ import annotations

import random
import wave
from io import BytesIO
from pathlib import Path

import pytest

from crmtel.ami.protocol import Message
from crmtel.calls.tracker import new_state
from crmtel.fakepbx.simulator import Rewriter, Timing, load_patterns, recording_names, retime
from crmtel.fakepbx.tones import tone_wav, write_recording
from tests.fixtures.traces import TimedMessage, ended, run, to_events

PATTERNS = {p.name: p for p in load_patterns()}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_retimed_calls_keep_their_order_and_ring_and_talk_as_planned(name: str) -> None:
    """Ring and talk time measured by the real tracker equal the planned ones (±1 s); events never reorder."""
    pattern = PATTERNS[name]
    timing = Timing(ring=17.0, talk=95.0 if pattern.answered else 0.0)
    times = retime(pattern.messages, timing)
    assert times == sorted(times)
    items = Rewriter(random.Random(1)).rewrite(pattern, start=0.0, epoch=1_795_000_000.0, timing=timing)
    _state, effects = run(new_state("pbx1"), to_events(TimedMessage(i.t, Message(i.headers)) for i in items))
    (call,) = ended(effects)
    assert call.record.talk_seconds == pytest.approx(timing.talk, abs=1.0)
    if pattern.answered:
        assert call.record.ring_seconds == pytest.approx(timing.ring, abs=1.0)
    else:
        assert call.record.ring_seconds >= timing.ring - 1.0
        assert call.record.outcome is not None
        assert call.record.outcome.value == "missed"


def test_realistic_timings_are_tens_of_seconds_to_a_few_minutes() -> None:
    """Over many draws: talk 15 s-5 min with a median near a minute; rings 4-40 s; missed calls do not talk."""
    rng = random.Random(5)
    talks = sorted(Timing.realistic(rng, answered=True).talk for _ in range(2000))
    assert talks[0] >= 15.0
    assert talks[-1] <= 300.0
    assert 45.0 <= talks[len(talks) // 2] <= 100.0
    missed = [Timing.realistic(rng, answered=False) for _ in range(200)]
    assert all(m.talk == 0.0 and 10.0 <= m.ring <= 40.0 for m in missed)


def test_the_recorded_names_are_the_rewritten_mixmonitor_files() -> None:
    """The WAV the simulator writes carries the call's new Linkedid, as MIXMONITOR_FILENAME says."""
    pattern = PATTERNS["direct-answered"]
    items = Rewriter(random.Random(1)).rewrite(pattern, start=0.0, epoch=1_795_000_000.0)
    (name,) = recording_names(items)
    linkedid = next(dict(i.headers)["Linkedid"] for i in items if "Linkedid" in dict(i.headers))
    assert name == f"in-4951234567-{linkedid}.wav"


def test_tone_is_a_real_wav_and_names_cannot_escape_the_folder(tmp_path: Path) -> None:
    """A RIFF/WAVE file Python's wave module reads back; path-like names are refused."""
    data = tone_wav(seconds=1.0)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    with wave.open(BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (1, 8000, 8000)
    assert write_recording(tmp_path / "rec", "a.wav", data) == tmp_path / "rec" / "a.wav"
    for bad in ("../a.wav", "/etc/a.wav", "x/a.wav", "", ".."):
        assert write_recording(tmp_path / "rec", bad, data) is None
