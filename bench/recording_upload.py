"""Benchmark of memory while a recording is attached to a Bitrix24 call (``telephony.externalCall.attachRecord``
with ``FILE_CONTENT`` in base64): the uploading process's peak RSS, taken from the kernel (``wait4``), for a
200 MB recording streamed from disk (what crmtel does), the same file sent the way it was sent before (read
whole, base64 whole, JSON whole), and a 1 MB recording streamed (the same-run baseline: the peak must not follow
the file). The receiver is a loopback server that reads each body in chunks and checks its length.

    python bench/recording_upload.py                 # 200 MB (takes about a minute)
    python bench/recording_upload.py --mb 50

Target: the streamed 200 MB peak within 32 MB of the 1 MB baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import samerun
import smoke
from aiohttp import web
from pydantic import SecretStr

from crmtel.bitrix24.client import Bitrix24Client
from crmtel.config import Bitrix24Settings

FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^baseline: [\d.]+ MB recording streamed: peak RSS [\d.]+ MB",
    r"^[\d.]+ MB recording streamed: peak RSS [\d.]+ MB",
    r"^[\d.]+ MB recording buffered \(before\): peak RSS [\d.]+ MB",
    r"^target \(streamed peak within 32 MB of the baseline's\)",
)
MARGIN_MB = 32.0
METHOD = "telephony.externalCall.attachRecord"


def write_recording(path: Path, megabytes: float) -> None:
    """Random bytes (base64 cannot shrink them), written a megabyte at a time."""
    left = int(megabytes * 1024 * 1024)
    with path.open("wb") as fh:
        while left > 0:
            piece = min(left, 1024 * 1024)
            fh.write(os.urandom(piece))
            left -= piece


async def _upload(url: str, path: Path, mode: str) -> None:
    settings = Bitrix24Settings(webhook_url=SecretStr(url), timeout_seconds=300)
    client = Bitrix24Client(settings, None)  # type: ignore[arg-type]  # webhook mode: no tokens
    params = {"CALL_ID": "externalCall.bench", "FILENAME": path.name}
    try:
        if mode == "streamed":
            await client.upload(METHOD, params, "FILE_CONTENT", path)
        else:  # what crmtel did before: the whole file, its base64 and the JSON body in memory at once
            content = base64.b64encode(await asyncio.to_thread(path.read_bytes)).decode()
            await client.call(METHOD, {**params, "FILE_CONTENT": content})
    finally:
        await client.aclose()


def peak_rss_mb(url: str, path: Path, mode: str) -> float:
    """Run one upload as its own process; its peak RSS in MB."""
    proc = subprocess.Popen([sys.executable, __file__, "--upload", url, str(path), mode])
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {mode} upload of {path.name} failed")
    return usage.ru_maxrss / 1024


async def _receiver() -> tuple[web.AppRunner, str, list[int]]:
    sizes: list[int] = []

    async def take(request: web.Request) -> web.Response:
        total = 0
        tail = b""
        async for piece in request.content.iter_chunked(1 << 20):
            total += len(piece)
            tail = (tail + piece)[-2:]
        if tail != b'"}':
            return web.json_response({"error": "ERROR_CORE", "error_description": "bad body"}, status=400)
        sizes.append(total)
        return web.json_response({"result": {"FILE_ID": len(sizes)}})

    app = web.Application()
    app.router.add_post("/rest/1/bench/{method}", take)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}/rest/1/bench/", sizes


async def run(args: argparse.Namespace) -> int:
    runner, url, sizes = await _receiver()
    try:
        with tempfile.TemporaryDirectory(prefix="crmtel-upload-") as folder:
            small, big = Path(folder) / "small.wav", Path(folder) / "big.wav"
            await asyncio.to_thread(write_recording, small, args.baseline_mb)
            await asyncio.to_thread(write_recording, big, args.mb)
            base = await asyncio.to_thread(peak_rss_mb, url, small, "streamed")
            print(
                f"baseline: {args.baseline_mb:.1f} MB recording streamed: peak RSS {base:.0f} MB", flush=True
            )
            streamed = await asyncio.to_thread(peak_rss_mb, url, big, "streamed")
            print(f"{args.mb:.1f} MB recording streamed: peak RSS {streamed:.0f} MB", flush=True)
            buffered = await asyncio.to_thread(peak_rss_mb, url, big, "buffered")
            print(f"{args.mb:.1f} MB recording buffered (before): peak RSS {buffered:.0f} MB", flush=True)
    finally:
        await runner.cleanup()
    assert len(sizes) == 3, sizes
    missed = streamed - base > MARGIN_MB
    print(f"target (streamed peak within 32 MB of the baseline's): {'MISSED' if missed else 'met'}")
    return smoke.verdict(args, missed)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--upload":
        asyncio.run(_upload(sys.argv[2], Path(sys.argv[3]), sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=200.0, help="the large recording's size")
    parser.add_argument("--baseline-mb", type=float, default=1.0, help="the baseline recording's size")
    smoke.add_smoke(parser, mb=2.0, baseline_mb=0.1)
    args = smoke.parse(parser)
    samerun.report()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
