"""Logging, configured once by the CLI: structlog and stdlib records rendered alike (JSON lines or console)."""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from crmtel.config import LogSettings

_HANDLER_NAME = "crmtel"


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        # StreamHandler.__init__ assigns a stream; the current sys.stderr is always used instead.
        pass


@dataclass(slots=True)
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0


class RepeatLimiter(logging.Filter):
    """Lets through at most ``burst`` warnings of one kind per ``interval`` seconds and counts the rest.

    A kind is the logger plus the message template (or the structlog event name), never the formatted text,
    so a malformed AMI stream's 75,000 "line without a header name" warnings are a handful of lines. The first
    record of a kind after a suppressed stretch says how many were dropped (``[N more suppressed]``); the
    moment suppression starts is announced too. Info and debug records always pass.
    """

    def __init__(
        self,
        burst: int = 10,
        interval: float = 10.0,
        *,
        max_kinds: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._burst = burst
        self._interval = interval
        self._max_kinds = max_kinds
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()

    @staticmethod
    def _kind(record: logging.LogRecord) -> tuple[str, str]:
        msg = record.msg
        if isinstance(msg, dict):
            return record.name, str(msg.get("event", ""))[:200]
        return record.name, str(msg)[:200]

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether the record is written (it may gain a count of what was suppressed before it)."""
        if record.levelno < logging.WARNING:
            return True
        now = self._clock()
        kind = self._kind(record)
        window = self._windows.get(kind)
        if window is None or now - window.started >= self._interval:
            suppressed = window.suppressed if window is not None else 0
            window = self._windows[kind] = _Window(now)
            self._windows.move_to_end(kind)
            while len(self._windows) > self._max_kinds:
                self._windows.popitem(last=False)
            if suppressed:
                _note(record, f"{suppressed} more suppressed", suppressed)
        if window.passed >= self._burst:
            window.suppressed += 1
            return False
        window.passed += 1
        if window.passed == self._burst:
            _note(record, f"further ones suppressed for {self._interval:g} s", 0)
        return True


def _note(record: logging.LogRecord, text: str, suppressed: int) -> None:
    if isinstance(record.msg, dict):
        record.msg = {**record.msg, "repeats": text} | ({"suppressed": suppressed} if suppressed else {})
    else:
        record.msg = f"{record.getMessage()} [{text}]"
        record.args = ()


def _redacting(
    renderer: structlog.types.Processor, redact: Callable[[str], str]
) -> structlog.types.Processor:
    def render(logger: Any, name: str, event: Any) -> Any:
        line = renderer(logger, name, event)
        return redact(line) if isinstance(line, str) else line

    return render


def configure(settings: LogSettings, *, redact: Callable[[str], str] | None = None) -> None:
    """Send every log record (crmtel's structlog events and libraries' stdlib logs) to stderr, one format.

    ``redact`` sees each finished line (tracebacks included) and masks the configured secrets in it.
    """
    level = getattr(logging, settings.level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if settings.json_output
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    if redact is not None:
        renderer = _redacting(renderer, redact)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _CurrentStderr()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RepeatLimiter(settings.repeat_burst, settings.repeat_interval))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log and alembic's per-migration lines are noise at info level for a daemon.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
