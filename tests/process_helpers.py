"""Processes the tests start and look for: `tarot sandbox serve` on a free port (from
hack/local_processes.py, which the benches share), and finding processes by name, for tests that prove
a sandboxed program left nothing running; and `FailingSandbox`, a stand-in for a sandbox service whose
helper died."""

from __future__ import annotations

import os
from collections.abc import Sequence

from local_processes import start_sandbox_service

from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, TestResult, Verdict

__all__ = ["FailingSandbox", "processes_named", "start_sandbox_service"]


def processes_named(marker: str) -> list[int]:
    """The pids whose /proc/<pid>/comm is exactly `marker` (a process may vanish while we look)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as f:
                    if f.read().strip() == marker:
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


class FailingSandbox:
    """Test double of the sandbox boundary: answers every test with a `sandbox_error` verdict (not the
    program's fault), and counts the batches it was asked to run.

    It stands for a real service whose helper crashed mid-run, which cannot be provoked on demand; the
    protocol lets a backend report exactly this.
    """

    def __init__(self) -> None:
        self.runs = 0

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        self.runs += 1
        failed = TestResult(status=Verdict.SANDBOX_ERROR, detail="helper died")
        return [ExecutionResult(results=[failed] * len(r.tests), path="test-double") for r in requests]
