"""Reading an outside system's answer without trusting its size: a CRM (or a webhook receiver) that answers
hundreds of megabytes must not take crmtel's memory with it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

# A CRM's JSON answer larger than this is treated as no JSON at all (Bitrix24 pages 50 items; amoCRM 250).
JSON_LIMIT = 4 << 20


class AnswerTooLarge(ValueError):
    """The answer went past the limit (a ValueError: read as "not the JSON expected")."""


async def read_at_most(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the body, and whether there was more (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(min(64 << 10, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], True


async def json_answer(response: aiohttp.ClientResponse, limit: int = JSON_LIMIT) -> Any:
    """The JSON body (None when empty); AnswerTooLarge past ``limit``, ValueError when it is not JSON."""
    body, more = await read_at_most(response, limit)
    if more:
        raise AnswerTooLarge(f"answer larger than {limit} bytes")
    text = body.decode("utf-8", errors="replace").strip()
    return json.loads(text) if text else None


async def text_answer(response: aiohttp.ClientResponse, chars: int) -> str:
    """The beginning of the body as text, at most ``chars`` characters (for a delivery log)."""
    body, _more = await read_at_most(response, chars * 4)
    return body.decode("utf-8", errors="replace")[:chars]
