"""Progress of an import or export: a tqdm bar on a terminal, nothing otherwise (pipes, cron, CI logs)."""

from __future__ import annotations

import os
from typing import IO, Protocol

from tqdm import tqdm


class Progress(Protocol):
    """Told when a step starts (read the file, check and write the rows, …) and how many rows there are."""

    def step(self, name: str, rows: int | None = None) -> None:
        """The next step begins; ``rows`` once it is known."""

    def rows(self, done: int) -> None:
        """Rows read, checked (and written) so far, while a file is streamed in batches."""


class NoProgress:
    """Shows nothing (library use, tests)."""

    def step(self, name: str, rows: int | None = None) -> None:
        """Nothing."""

    def rows(self, done: int) -> None:
        """Nothing."""


def _size(stream: IO[str]) -> tuple[int, int]:
    try:
        columns, lines = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        columns, lines = 0, 0
    return columns or 80, lines or 24


class TerminalProgress:
    """A bar over the steps with the elapsed time and the row count, on ``stream`` only if it is a terminal.

    Rows are written in a few large batches (one executemany each), so the steps, not single rows, are what
    can honestly be shown moving.
    """

    def __init__(self, title: str, steps: int, stream: IO[str]) -> None:
        columns, lines = _size(stream)
        self._bar = tqdm(
            total=steps,
            desc=title,
            unit="step",
            file=stream,
            disable=not stream.isatty(),
            leave=False,
            # A terminal that reports no size (a fresh pty, a serial console) makes tqdm print nothing at all.
            ncols=columns,
            nrows=lines,
            bar_format="{desc}: {bar:20} {n_fmt}/{total_fmt} {postfix} [{elapsed}]",
        )
        self._steps = steps
        self._done = 0
        self._started = False
        self._rows: int | None = None

    def step(self, name: str, rows: int | None = None) -> None:
        """Finish the running step and show the next one."""
        if self._started:
            self._advance(1)
        self._started = True
        if rows is not None:
            self._rows = rows
        shown = f"{name}" + (f", {self._rows:,} rows".replace(",", " ") if self._rows is not None else "")
        self._bar.set_postfix_str(shown)

    def rows(self, done: int) -> None:
        """Count the rows done so far on the bar (a streamed file's size in rows is known only at its end)."""
        self._rows = done
        self._bar.set_postfix_str(f"{done:,} rows".replace(",", " "))

    def close(self) -> None:
        """Complete the bar and take it off the terminal (the summary line follows)."""
        if self._started:
            self._advance(self._steps - self._done)
        self._bar.close()

    def _advance(self, steps: int) -> None:
        steps = max(0, min(steps, self._steps - self._done))
        self._done += steps
        self._bar.update(steps)
