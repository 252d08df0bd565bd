"""The history offers a recording only where a file is there to play."""

from __future__ import annotations

from pathlib import Path

from crmtel.fakepbx.tones import tone_wav
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


async def test_recording_ranges_follow_rfc_7233(db: Database, tmp_path: Path) -> None:
    """Through the running app: one range → 206 with Content-Range; bytes=-0 and past the end → 416 with
    ``bytes */size``; an invalid or multi-range header → 200 with the whole file; a HEAD sends no body."""
    rec = tmp_path / "rec"
    rec.mkdir()
    body = tone_wav(seconds=0.5)
    size = len(body)
    (rec / "in-1.wav").write_bytes(body)
    async with running_app(db, recordings_dir=rec) as rig, rig.browser("vera") as vera:
        await add_call(
            db,
            linkedid="1.1",
            rang=("103",),
            answered_by="103",
            recording="/var/spool/asterisk/monitor/in-1.wav",
        )
        url = "/api/calls/pbx1:1.1/recording"
        async with vera.get(url, headers={"Range": "bytes=0-3"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 0-3/{size}"
            assert await r.read() == b"RIFF"
            etag = r.headers["ETag"]
        async with vera.get(url, headers={"Range": "bytes=-4"}) as r:
            assert r.status == 206
            assert await r.read() == body[-4:]
        for unsatisfiable in ("bytes=-0", f"bytes={size}-", f"bytes={size + 10}-{size + 20}"):
            async with vera.get(url, headers={"Range": unsatisfiable}) as r:
                assert r.status == 416, unsatisfiable
                assert r.headers["Content-Range"] == f"bytes */{size}"
                assert await r.read() == b""
        for ignored in ("bytes=5-2", "bytes=0-1,4-5", "lines=1-2", "bytes=zz"):
            async with vera.get(url, headers={"Range": ignored}) as r:
                assert r.status == 200, ignored
                assert await r.read() == body
        async with vera.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'}) as r:
            assert r.status == 200
            assert await r.read() == body
        async with vera.get(url, headers={"Range": "bytes=0-3", "If-Range": etag}) as r:
            assert r.status == 206
        async with vera.head(url) as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == str(size)
            assert await r.read() == b""


async def test_a_recording_is_found_by_its_call_never_by_a_bare_name(db: Database, tmp_path: Path) -> None:
    """A path written under another mount point is guessed below the folder only where the guess is this call's:
    its day's folder or its Linkedid in the name; another call's file of the same bare name is not served."""
    rec = tmp_path / "rec"
    (rec / "2026" / "11" / "23").mkdir(parents=True)
    (rec / "out.wav").write_bytes(b"RIFF-another-call")
    (rec / "2026" / "11" / "23" / "day.wav").write_bytes(b"RIFF-the-day")
    (rec / "in-7.7.wav").write_bytes(b"RIFF-by-id")
    async with running_app(db, recordings_dir=rec) as rig, rig.browser("vera") as vera:
        # Written as /recordings/… on the PBX (a MIXMON_DIR crmtel's folder does not mirror).
        await add_call(
            db, linkedid="5.5", rang=("103",), answered_by="103", recording="/recordings/x/out.wav"
        )
        await add_call(
            db, linkedid="6.6", rang=("103",), answered_by="103", recording="/recordings/2026/11/23/day.wav"
        )
        await add_call(db, linkedid="7.7", rang=("103",), answered_by="103", recording="/mnt/in-7.7.wav")
        async with vera.get("/api/calls/pbx1:5.5/recording") as r:
            assert r.status == 404
        async with vera.get("/api/calls/pbx1:6.6/recording") as r:
            assert r.status == 200
            assert await r.read() == b"RIFF-the-day"
        async with vera.get("/api/calls/pbx1:7.7/recording") as r:
            assert r.status == 200
            assert await r.read() == b"RIFF-by-id"
        async with vera.get("/api/calls") as r:
            links = {c["call_id"]: c["recording"] for c in (await r.json())["calls"]}
        assert links["pbx1:5.5"] is None
