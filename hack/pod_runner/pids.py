"""Which pod processes this runner started, on disk, so none outlives the runner that owned it.

Each running container has `pids/<pod uid>` holding "<pid> <start time>" (the start time in clock
ticks, field 22 of /proc/<pid>/stat). Pod processes die with the runner (PR_SET_PDEATHSIG), but a
process that escaped it would keep running beside the replacement pod the Job controller creates
(work done twice, two writers on one checkpoint). A starting runner and `hack/cluster down` kill the
process group of every file left behind; the start time guards against a pid the kernel reused.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after "(comm)" start at field 3; 22 is index 19


def record(state_dir: Path, uid: str, pid: int) -> Path:
    path = state_dir / "pids" / uid
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid} {_start_ticks(pid) or ''}".strip())
    return path


def kill_leftovers(state_dir: Path) -> list[int]:
    """SIGKILL the process group of every recorded pid that is still the process we started."""
    killed: list[int] = []
    for path in sorted((state_dir / "pids").glob("*")):
        words = path.read_text().split()
        path.unlink(missing_ok=True)
        if not words:
            continue
        pid = int(words[0])
        if len(words) > 1 and _start_ticks(pid) != words[1]:
            continue  # gone, or the pid now belongs to another process
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
    return killed
