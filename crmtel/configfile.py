"""The TOML config file read within bounds: a regular file, at most 1 MiB of UTF-8 text, nested at most 32 deep.

Anything else (``/dev/zero``, a FIFO, a directory, a binary file, a key nested 100,000 deep) is one
ConfigError line, within a second and without allocating more than the size limit.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crmtel.errors import ConfigError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
# tomllib takes quadratic time in the parts of one dotted key; a real config has a handful.
MAX_KEY_PARTS = 64


def read_config(path: Path) -> dict[str, Any]:
    """The parsed TOML file; a one-line ConfigError naming the file for anything that is not a sane config."""
    text = _read_text(path)
    too_deep = _key_parts_over(text, MAX_KEY_PARTS)
    if too_deep is not None:
        raise ConfigError(f"config file {path}: line {too_deep} has a key of more than {MAX_KEY_PARTS} parts")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
    except RecursionError:
        raise ConfigError(f"config file {path}: values nested more than {MAX_DEPTH} deep") from None
    except ValueError as err:
        # An integer of thousands of digits (Python's int-from-string limit).
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
    if depth(data) > MAX_DEPTH:
        raise ConfigError(f"config file {path}: values nested more than {MAX_DEPTH} deep")
    return data


def _read_text(path: Path) -> str:
    try:
        # O_NONBLOCK: opening a FIFO nobody writes to must not hang; a regular file ignores the flag.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config file {path} is not a regular file ({_kind(info.st_mode)})")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"config file {path} is {info.st_size} bytes; the limit is {MAX_BYTES}")
        # The size may change under us: never read more than the limit, whatever fstat said.
        chunks: list[bytes] = []
        left = MAX_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"config file {path} is larger than the limit of {MAX_BYTES} bytes")
    if b"\x00" in data:
        raise ConfigError(f"config file {path} is binary (NUL bytes), not a TOML text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"config file {path}: line {line} is not UTF-8 text (byte {err.start})") from None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def depth(value: object) -> int:
    """How deeply tables and arrays nest in a parsed value (iteratively: no recursion on hostile input)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterator[object] = iter(item.values())
        elif isinstance(item, list):
            children = iter(item)
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _key_parts_over(text: str, limit: int) -> int | None:
    """The first line with more than ``limit`` dots outside strings and comments (not inside a number)."""
    if not any(row.count(".") >= limit for row in text.splitlines()):
        return None
    line = 1
    dots = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            dots = 0
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            end = _string_end(text, i + len(quote), quote)
            line += text.count("\n", i, end)
            i = end
            continue
        elif ch == "." and not (i and text[i - 1].isdigit() and i + 1 < n and text[i + 1].isdigit()):
            dots += 1
            if dots >= limit:
                return line
        i += 1
    return None


def _string_end(text: str, start: int, quote: str) -> int:
    """The index just after the string that began before ``start`` (or the end of a broken one)."""
    i = start
    n = len(text)
    while i < n:
        if quote[0] == '"' and text[i] == "\\":
            i += 2
            continue
        if text.startswith(quote, i):
            return i + len(quote)
        if len(quote) == 1 and text[i] == "\n":
            return i
        i += 1
    return n
