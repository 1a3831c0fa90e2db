"""Processes the tests start and look for: `tarot sandbox serve` on a free port (from
hack/local_processes.py, which the benches share), and finding processes by name, for tests that prove
a sandboxed program left nothing running."""

from __future__ import annotations

import os

from local_processes import start_sandbox_service

__all__ = ["processes_named", "start_sandbox_service"]


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
