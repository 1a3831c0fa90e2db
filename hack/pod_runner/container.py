"""One container run as a local process group, its output written as a CRI log file.

The log format is the one containerd writes and the kubelet (here: kwok's kubelet endpoint) reads:
`<RFC3339Nano timestamp> <stdout|stderr> <F|P> <line>`. The process gets its own session so the whole
group can be signalled, and PR_SET_PDEATHSIG so it dies with the runner even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
_TAIL_BYTES = 2048


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def cri_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LocalContainer:
    """Starts argv, pumps stdout/stderr into a CRI log file, keeps the output's tail."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("ab", buffering=0)
        self._lock = threading.Lock()
        self._tail: deque[bytes] = deque(maxlen=80)
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, b"stdout"), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, b"stderr"), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _pump(self, stream: IO[bytes] | None, name: bytes) -> None:
        assert stream is not None
        for line in iter(stream.readline, b""):
            full = line.endswith(b"\n")
            body = line.rstrip(b"\n")
            record = b"%s %s %s %s\n" % (cri_timestamp().encode(), name, b"F" if full else b"P", body)
            with self._lock:
                if self._log.closed:  # a leftover grandchild still holds the pipe after the exit
                    break
                self._log.write(record)
                self._tail.append(line)
        stream.close()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (negative: killed by that signal), or None when still running after timeout."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for pump in self._pumps:
            pump.join(timeout=5)
        with self._lock:
            self._log.close()
        return code

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM to the process group, SIGKILL after the grace period, as the kubelet does."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            code = self.wait(timeout=0.1)
            if code is not None:
                self._signal(signal.SIGKILL)  # leftovers of the group
                return code
        self._signal(signal.SIGKILL)
        code = self.wait()
        assert code is not None
        return code

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def output_tail(self) -> str:
        """The last lines of output, for terminationMessagePolicy: FallbackToLogsOnError."""
        with self._lock:
            text = b"".join(self._tail)[-_TAIL_BYTES:]
        return text.decode(errors="replace")
