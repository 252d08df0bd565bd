"""Errors that cross package boundaries."""

from __future__ import annotations

from collections.abc import Sequence


class CrmtelError(Exception):
    """Base of every error crmtel raises on purpose."""


class ConfigError(CrmtelError):
    """The configuration is missing, unreadable or invalid."""


class ConfigProblems(ConfigError):
    """One or more configuration mistakes, each a line saying where, what is wrong and what would be valid."""

    def __init__(self, problems: Sequence[object]) -> None:
        self.lines = tuple(str(p) for p in problems)
        super().__init__("\n".join(self.lines))


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
