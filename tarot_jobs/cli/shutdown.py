"""Stopping a command that runs programs: SIGTERM or SIGINT ends it at once and its sandbox with it.

Without this, SIGTERM kills the command without running its `finally` (the sandbox's helpers live on
until they notice, a checker busy in a test for as long as that takes), and Ctrl-C closes the sandbox
gracefully, which first runs every test still queued. Instead the handler kills every jail this process
started — the helper that is pid 1 of its PID namespace, which takes all the namespace's processes with
it, while its launcher outside removes the jail's mount point and exits — and exits with 128 + the
signal's number. `tarot sandbox serve` stops on its own signal handlers (it finishes what is running).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

from tarot_jobs.sandbox.pool import HELPER_SCRIPT

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
    return found


def _is_helper(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.fsencode(str(HELPER_SCRIPT)) in f.read().split(b"\0")
    except OSError:
        return False


def _is_namespace_init(pid: int) -> bool:
    """Whether `pid` is pid 1 of a PID namespace below ours (`NSpid: <ours> ... 1`)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next((line for line in f if line.startswith("NSpid:")), "")
    except OSError:
        return False
    pids = line.split()[1:]
    return len(pids) > 1 and pids[-1] == "1"


def sandbox_targets(pid: int | None = None) -> list[int]:
    """What to kill so that no sandbox process of `pid` (default: this process) survives: the jailed
    helper of each helper it started, or the helper itself when it has no PID namespace (its program
    children die with it by parent-death signal)."""
    targets: list[int] = []
    for helper in filter(_is_helper, _children(pid or os.getpid())):
        inits = [child for child in _children(helper) if _is_namespace_init(child)]
        targets += inits or [helper]
    return targets


def _stop(signum: int, _frame: FrameType | None) -> None:
    for target in sandbox_targets():
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.write(2, f"stopped by {signal.Signals(signum).name}; the sandbox's processes were killed\n".encode())
    os._exit(128 + signum)


@contextlib.contextmanager
def sandbox_dies_with_the_command() -> Iterator[None]:
    """Within: SIGTERM and SIGINT kill this process's sandbox and exit (call from the main thread)."""
    previous = {sig: signal.signal(sig, _stop) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
