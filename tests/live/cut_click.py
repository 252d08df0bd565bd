"""Cut one click-to-call out of a live-tier recording into ``crmtel/fakepbx/data/live/click-*.jsonl``.

``python -m tests.live.cut_click RECORDING_STEM EXTENSION OUT.jsonl [--spool FOLDER]`` keeps every message naming
the call the ``Originate`` to ``PJSIP/EXTENSION`` made (its Linkedid, Uniqueid or DestUniqueid) and that
Originate's ``OriginateResponse`` (a phone that is not registered makes no channel: only the response), with
``Timestamp`` dropped and ``t`` from the first of them; ``--spool`` (the run's monitor folder) is written as
``/var/spool/asterisk/monitor/``. The fake AMI server rewrites these for each request
(:mod:`crmtel.fakepbx.originate`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from tests.live.cut import Headers, _read

SPOOL = "/var/spool/asterisk/monitor/"


def cut_click(
    messages: Sequence[tuple[float, Headers]], extension: str, spool: str | None = None
) -> list[tuple[float, Headers]]:
    """The first click-to-call of ``extension`` in a recording (see the module docstring)."""
    call: str | None = None
    picked: list[tuple[float, Headers]] = []
    for t, headers in messages:
        values = dict(headers)
        event = values.get("Event")
        if (
            call is None
            and event == "Newchannel"
            and values.get("Channel", "").startswith(f"PJSIP/{extension}-")
        ):
            call = values.get("Linkedid")
        mine = call is not None and call in (
            values.get("Linkedid"),
            values.get("Uniqueid"),
            values.get("DestUniqueid"),
            values.get("DestLinkedid"),
        )
        response = event == "OriginateResponse" and values.get("Channel", "").split("-", 1)[0] == (
            f"PJSIP/{extension}"
        )
        if mine or response:
            kept = [(k, v.replace(spool, SPOOL) if spool else v) for k, v in headers if k != "Timestamp"]
            picked.append((t, kept))
        if response and call is None:
            break  # not registered: the response is all there is
    start = picked[0][0] if picked else 0.0
    return [(round(t - start, 6), headers) for t, headers in picked]


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("extension")
    parser.add_argument("out", type=Path)
    parser.add_argument("--spool", help="the run's monitor folder, written as /var/spool/asterisk/monitor/")
    args = parser.parse_args()
    picked = cut_click(_read(args.recording), args.extension, args.spool)
    with args.out.open("w", encoding="utf-8") as out:
        for t, headers in picked:
            out.write(json.dumps({"t": t, "headers": [list(h) for h in headers]}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
