"""Short real WAV files for the demo's recordings: a generated tone, as a PBX's MixMonitor would leave a file."""

from __future__ import annotations

import io
import math
import wave
from array import array
from pathlib import Path

RATE = 8000  # Hz, telephone quality, as Asterisk records by default


def tone_wav(seconds: float = 3.0, pitch: float = 440.0, volume: float = 0.3) -> bytes:
    """A mono 16-bit PCM WAV of a soft tone that fades in and out (bytes, RIFF header included)."""
    count = max(1, int(RATE * seconds))
    fade = max(1, RATE // 20)
    peak = 32767 * max(0.0, min(volume, 1.0))
    samples = array(
        "h",
        (
            int(peak * min(1.0, i / fade, (count - i) / fade) * math.sin(2 * math.pi * pitch * i / RATE))
            for i in range(count)
        ),
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return buf.getvalue()


def write_recording(folder: Path, name: str, data: bytes) -> Path | None:
    """Write ``data`` as ``folder/name`` (a bare file name only); None if the name is not a plain file name."""
    target = folder / name
    if not name or Path(name).name != name or name in {".", ".."}:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target
