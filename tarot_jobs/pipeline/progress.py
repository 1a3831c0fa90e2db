"""Progress of long stages: rich bars on a terminal, periodic plain lines in a log.

A Job's log (kubectl logs) and CI are not terminals, where a live bar shows
nothing until it ends; there each task prints a line at most every
`interval_s` seconds and when it finishes, with done/total, elapsed and ETA.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def format_seconds(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Task:
    """One counted piece of work; `advance` it, optionally with a short status (e.g. the reward)."""

    def __init__(self, reporter: Reporter, description: str, total: int, bar: Progress | None) -> None:
        self.reporter = reporter
        self.description = description
        self.total = total
        self.done = 0
        self.info = ""
        self.started = time.monotonic()
        self._bar = bar
        self._id = bar.add_task(description, total=total, info="") if bar is not None else None
        self._last_line = 0.0

    def advance(self, amount: int = 1, info: str | None = None) -> None:
        self.done += amount
        if info is not None:
            self.info = info
        if self._bar is not None and self._id is not None:
            self._bar.update(self._id, advance=amount, info=self.info)
        elif time.monotonic() - self._last_line >= self.reporter.interval_s or self.done >= self.total:
            self._print_line()

    def _print_line(self) -> None:
        self._last_line = time.monotonic()
        elapsed = self._last_line - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        parts = [f"{self.description}: {self.done}/{self.total}"]
        if self.info:
            parts.append(self.info)
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if eta is not None and self.done < self.total:
            parts.append(f"ETA {format_seconds(eta)}")
        self.reporter.log(", ".join(parts))


class Reporter:
    """Prints stage messages with the run's elapsed time, and hands out progress tasks."""

    def __init__(
        self, console: Console | None = None, interval_s: float = 10.0, live: bool | None = None
    ) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.interval_s = interval_s
        self.live = self.console.is_terminal if live is None else live
        self.started = time.monotonic()

    def log(self, message: str) -> None:
        self.console.print(f"[{format_seconds(time.monotonic() - self.started)}] {message}", markup=False)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Task]:
        if not self.live:
            yield Task(self, description, total, None)
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bar:
            yield Task(self, description, total, bar)
