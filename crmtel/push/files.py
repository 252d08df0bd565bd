"""A file served over HTTP with byte ranges as RFC 7233 says (see ``crmtel.push.ranges`` for the decisions)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from crmtel.push.ranges import Part, Unsatisfiable, decide, if_range_matches

_CHUNK = 64 * 1024


async def send_file(
    request: web.Request, path: Path, *, content_type: str, headers: Mapping[str, str]
) -> web.StreamResponse:
    """The file (or the one range of it asked for) with ETag and Last-Modified; 416 for an unsatisfiable range."""
    fh = await asyncio.to_thread(path.open, "rb")
    try:
        info = os.fstat(fh.fileno())
        size = info.st_size
        etag = f"{info.st_mtime_ns:x}-{size:x}"
        common = {
            **headers,
            "Accept-Ranges": "bytes",
            "ETag": f'"{etag}"',
            "Last-Modified": formatdate(info.st_mtime, usegmt=True),
        }
        matches = if_range_matches(request.headers.get("If-Range"), etag, info.st_mtime)
        decision = decide(request.headers.get("Range"), size, if_range_matches=matches)
        if isinstance(decision, Unsatisfiable):
            return web.Response(status=416, headers={**common, "Content-Range": f"bytes */{size}"})
        start, end, status = 0, size - 1, 200
        if isinstance(decision, Part):
            start, end, status = decision.start, decision.end, 206
            common["Content-Range"] = f"bytes {start}-{end}/{size}"
        response = web.StreamResponse(status=status, headers=common)
        response.content_type = content_type
        response.content_length = end - start + 1
        await response.prepare(request)
        if request.method != "HEAD":
            await asyncio.to_thread(fh.seek, start)
            left = end - start + 1
            while left > 0:
                chunk = await asyncio.to_thread(fh.read, min(_CHUNK, left))
                if not chunk:
                    # The file shrank while being sent: the short body tells the client.
                    break
                await response.write(chunk)
                left -= len(chunk)
        await response.write_eof()
        return response
    finally:
        fh.close()
