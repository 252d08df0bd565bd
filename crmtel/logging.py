"""Structured logging with structlog, configured once by the CLI."""

from __future__ import annotations

import logging
import sys

import structlog

from crmtel.config import LogSettings


def configure(settings: LogSettings) -> None:
    """Route stdlib and structlog output to stderr, as JSON lines or readable console lines."""
    level = getattr(logging, settings.level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if settings.json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level, logging.INFO), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
