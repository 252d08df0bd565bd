"""The history offers a recording only where a file is there to play."""

from __future__ import annotations

from pathlib import Path

from crmtel.ami.tones import tone_wav
from crmtel.store.db import Database
from tests.integration.test_web_app import add_call, running_app


async def test_only_calls_with_a_file_get_a_recording_link(db: Database, tmp_path: Path) -> None:
    """A file on disk → a link that plays audio/wav; a named but missing file or no name → null."""
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "in-1.wav").write_bytes(tone_wav(seconds=0.5))
    async with running_app(db, recordings_dir=rec) as rig, rig.browser("vera") as vera:
        await add_call(
            db,
            linkedid="1.1",
            rang=("103",),
            answered_by="103",
            recording="/var/spool/asterisk/monitor/in-1.wav",
        )
        await add_call(
            db,
            linkedid="1.2",
            rang=("103",),
            answered_by="103",
            recording="/var/spool/asterisk/monitor/gone.wav",
        )
        await add_call(db, linkedid="1.3", rang=("103",), answered_by=None)
        async with vera.get("/api/calls") as r:
            links = {c["call_id"]: c["recording"] for c in (await r.json())["calls"]}
        assert links == {
            "pbx1:1.1": "/api/calls/pbx1:1.1/recording",
            "pbx1:1.2": None,
            "pbx1:1.3": None,
        }
        async with vera.get("/api/calls/pbx1:1.2") as r:
            assert (await r.json())["call"]["recording"] is None
        async with vera.get("/api/calls/pbx1:1.1/recording") as r:
            assert r.status == 200
            assert r.content_type == "audio/wav"
            assert (await r.read())[:4] == b"RIFF"
