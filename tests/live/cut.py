"""Cut one call out of a live-tier recording (``Witness.save``) into a trace for the fast suite.

``python -m tests.live.cut RECORDING_STEM LINKEDID OUT_STEM`` writes ``OUT_STEM.ami`` and ``OUT_STEM.jsonl``:
the login response, then every message that names one of the call's channels (Uniqueid, DestUniqueid,
transferer, Local halves…) or one of the bridges those channels were in — nothing rewritten, times kept.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from crmtel.ami.protocol import encode_message

Headers = list[tuple[str, str]]

BANNER = "Asterisk Call Manager/11.0.0"


def _read(stem: Path) -> list[tuple[float, Headers]]:
    out: list[tuple[float, Headers]] = []
    for line in stem.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "headers" in row:
            out.append((float(row["t"]), [(str(k), str(v)) for k, v in row["headers"]]))
    return out


def cut(messages: Sequence[tuple[float, Headers]], linkedid: str) -> list[tuple[float, Headers]]:
    """The login response and every message about the call ``linkedid`` (its channels and their bridges)."""
    channels = {dict(h).get("Uniqueid") for _, h in messages if dict(h).get("Linkedid") == linkedid}
    channels.discard(None)
    bridges = {
        dict(h).get("BridgeUniqueid")
        for _, h in messages
        if dict(h).get("Event") in ("BridgeEnter", "BridgeLeave") and dict(h).get("Uniqueid") in channels
    }
    bridges.discard(None)
    wanted = channels | bridges
    out: list[tuple[float, Headers]] = []
    for i, (t, headers) in enumerate(messages):
        login = i == 0 and dict(headers).get("Response") == "Success"
        if login or any(key.endswith("Uniqueid") and value in wanted for key, value in headers):
            out.append((t, headers))
    return out


def write(messages: Sequence[tuple[float, Headers]], stem: Path) -> None:
    """``stem.ami`` (banner, then the messages as Asterisk sent them) and ``stem.jsonl``."""
    raw = bytearray(f"{BANNER}\r\n".encode())
    for _, headers in messages:
        raw += encode_message(headers)
    stem.with_suffix(".ami").write_bytes(bytes(raw))
    with stem.with_suffix(".jsonl").open("w", encoding="utf-8") as out:
        out.write(json.dumps({"t": messages[0][0] if messages else 0.0, "banner": BANNER}) + "\n")
        for t, headers in messages:
            out.write(json.dumps({"t": t, "headers": [list(h) for h in headers]}, ensure_ascii=False) + "\n")


def main(argv: Sequence[str]) -> int:
    """Cut ``argv[1]``'s call ``argv[2]`` into ``argv[3]``."""
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    write(cut(_read(Path(argv[1])), argv[2]), Path(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
