"""The streamed attachRecord body: the same JSON a buffered request would send, its length known up front."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from crmtel.bitrix24.client import _CHUNK, json_with_file


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, _CHUNK - 1, _CHUNK, _CHUNK + 1, 2 * _CHUNK + 2])
async def test_the_streamed_body_is_the_json_of_the_whole_file(tmp_path: Path, size: int) -> None:
    """Every size around the chunk and base64's 3-byte groups: valid JSON, exact Content-Length, same content."""
    path = tmp_path / "rec.wav"
    content = bytes((i * 7) % 251 for i in range(size))
    path.write_bytes(content)
    params = {"CALL_ID": "externalCall.1", "FILENAME": "запись.wav", "auth": "t"}
    length, stream = json_with_file(params, "FILE_CONTENT", path)
    body = b"".join([piece async for piece in stream])
    assert len(body) == length
    decoded = json.loads(body)
    assert base64.b64decode(decoded.pop("FILE_CONTENT"), validate=True) == content
    assert decoded == params


async def test_no_params_still_makes_an_object(tmp_path: Path) -> None:
    """An empty parameter set gives {"FILE_CONTENT": "…"} (no stray comma)."""
    path = tmp_path / "a.mp3"
    path.write_bytes(b"abc")
    length, stream = json_with_file({}, "FILE_CONTENT", path)
    body = b"".join([piece async for piece in stream])
    assert json.loads(body) == {"FILE_CONTENT": "YWJj"}
    assert len(body) == length
