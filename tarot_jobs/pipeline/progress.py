"""Progress of long stages: rich bars on a terminal, periodic plain lines in a log.

A Job's log (kubectl logs) and CI are not terminals, where a live bar shows
nothing until it ends; there each task prints a line at most every
`interval_s` seconds and when it finishes, with done/total, elapsed and ETA.

Training's progress (a phase's label, one advance per logged step with its reward, KL, loss and
throughput) is written once here for every caller: `tarot train` and the local runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

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

    def __init__(self, console: Console, interval_s: float = 10.0, live: bool | None = None) -> None:
        self.console = console  # the CLI's one stderr console (tarot_jobs/cli/output.py)
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


StepListener = Callable[[Mapping[str, Any]], None]


def phase_label(index: int, phases: int, tiers: Sequence[str]) -> str:
    """e.g. "train phase 2/4 [B+I]" (1-based for people; tiers by initial)."""
    return f"train phase {index + 1}/{phases} [{'+'.join(t[0].upper() for t in tiers)}]"


def step_info(record: Mapping[str, Any]) -> str:
    """The short status of one logged training step: reward, KL, loss, tokens/s (what it has)."""
    parts = [f"{key} {record[key]:.3f}" for key in ("reward", "kl", "loss") if record.get(key) is not None]
    if record.get("tokens_per_second") is not None:
        parts.append(f"{record['tokens_per_second']:.0f} tok/s")
    return ", ".join(parts)


@contextmanager
def step_progress(
    reporter: Reporter, label: str, steps: int, *listeners: StepListener
) -> Iterator[StepListener]:
    """A progress task over a phase's steps; yields the trainer's on_step callback, which advances it
    to each logged step and calls `listeners` with the record. Records count steps run-wide (`step`)
    and within their phase (`phase_step`); the task counts within the phase."""
    with reporter.task(label, max(steps, 1)) as task:
        done = 0

        def on_step(record: Mapping[str, Any]) -> None:
            nonlocal done
            step = int(record.get("phase_step", record["step"]))
            task.advance(step - done, info=step_info(record))
            done = step
            for listener in listeners:
                listener(record)

        yield on_step
