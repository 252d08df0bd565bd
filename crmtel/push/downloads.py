"""Long CSV downloads streamed as the store answers (the client, lead, deal, task and call lists)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence

import structlog
from aiohttp import web

from crmtel.reports.render import BOM, excel_lines

log = structlog.get_logger(__name__)


async def csv_stream(
    request: web.Request,
    heading: Sequence[str],
    batches: AsyncIterator[Sequence[Sequence[str]]],
    *,
    sep: str | None,
    filename: str,
    numeric: Collection[int] = (),
) -> web.StreamResponse:
    """Text cells as a CSV attachment Excel opens (``sep`` "comma": ``,`` and decimal points; else ``;`` and
    decimal commas in the ``numeric`` columns), written batch by batch as the store answers — every row, in
    memory one batch at a time. A failure after the first bytes cannot be a status any more: it is logged and
    the connection dropped before the chunked body's end, so the browser reports a failed download instead of
    keeping a file that looks complete."""
    delimiter = "," if sep == "comma" else ";"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    if request.method == "HEAD":
        # The headers a GET would get and no body: bytes written after a HEAD's headers would be read by the
        # client as the start of its next answer on the same connection.
        await response.prepare(request)
        await response.write_eof()
        return response
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(BOM + excel_lines([heading], sep=delimiter))
    rows = 0
    try:
        async for lines in batches:
            rows += len(lines)
            await response.write(excel_lines(lines, sep=delimiter, numeric=numeric))
    except ConnectionError:
        raise  # the browser went away: nothing to tell it
    except Exception:
        log.exception("download.aborted", file=filename, rows_sent=rows)
        if request.transport is not None:
            request.transport.abort()
        # Not re-raised: the 503 a store error would get cannot be sent after the headers; aiohttp finds the
        # connection closed when it tries to end the body.
        return response
    await response.write_eof()
    return response
