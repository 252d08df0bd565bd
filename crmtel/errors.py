"""Errors that cross package boundaries."""

from __future__ import annotations

from collections.abc import Sequence


class CrmtelError(Exception):
    """Base of every error crmtel raises on purpose."""


class ConfigError(CrmtelError):
    """The configuration is missing, unreadable or invalid."""


class ConfigProblems(ConfigError):
    """One or more configuration mistakes, each a line saying where, what is wrong and what would be valid."""

    # A hostile file under the size limit can hold 80,000 wrong keys, or one key of a million characters: the
    # first problems are told, each cut to a line's length, and how many more there are.
    MAX_LINES = 20
    MAX_CHARS = 2000

    def __init__(self, problems: Sequence[object], *, total: int | None = None) -> None:
        """``total``: how many problems there are when only the first ones are given."""
        lines = [_cut(str(p), self.MAX_CHARS) for p in problems[: self.MAX_LINES]]
        more = max(len(problems), total or 0) - len(lines)
        if more > 0:
            lines.append(f"… and {more} more problem(s)")
        self.lines = tuple(lines)
        super().__init__("\n".join(self.lines))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class StoreUnavailable(CrmtelError):
    """The record store could not be reached or failed."""


class WriteFenced(CrmtelError):
    """Another node leads these PBXs now (a cluster take-over): this node's writes of them were refused."""

    def __init__(self, pbxes: Sequence[str]) -> None:
        self.pbxes = tuple(sorted(pbxes))
        super().__init__(f"another node leads {', '.join(self.pbxes)} now: not written here")


class NotFound(CrmtelError):
    """A record that was asked for does not exist."""


class ImportFailed(CrmtelError):
    """A file could not be imported; carries the per-row errors."""
