"""Errors that cross package boundaries."""

from __future__ import annotations


class CrmtelError(Exception):
    """Base of every error crmtel raises on purpose."""


class ConfigError(CrmtelError):
    """The configuration is missing, unreadable or invalid."""


class StoreUnavailable(CrmtelError):
    """The record store could not be reached or failed."""


class NotFound(CrmtelError):
    """A record that was asked for does not exist."""


class ImportFailed(CrmtelError):
    """A file could not be imported; carries the per-row errors."""
