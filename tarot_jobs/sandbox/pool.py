"""A pool of sandbox helpers, one per worker thread, fed from one queue of runs.

Each worker thread owns one helper process (`helper.py`) and sends it one run
at a time; the thread only blocks on pipes, so the GIL is free for the others.
A helper that dies, hangs or answers garbage is killed and replaced, and the
run it had becomes a `sandbox_error` (an infrastructure failure, never a wrong
answer). When no warm helper can be started, each run gets a fresh one-shot
helper process instead: the plain-subprocess path, paying interpreter start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

HELPER_SCRIPT = Path(__file__).with_name("helper.py")
FORKSERVER_PATH = "forkserver"
SUBPROCESS_PATH = "subprocess"
# Beyond the run's own time limit: compile, kill, reap and drain.
_REPLY_GRACE_S = 10.0
_START_TIMEOUT_S = 30.0
# The helper and its children see only this environment, never the service's.
_HELPER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


class HelperError(RuntimeError):
    """The helper process died, hung or broke the protocol."""


def _sandbox_uid() -> int:
    """A uid of its own per helper (used when root), so children of different helpers are strangers."""
    return random.randrange(100_000, 1_000_000_000)


class HelperProcess:
    """One helper process and the framed JSON protocol spoken with it."""

    def __init__(self, *, once: bool = False) -> None:
        command = [sys.executable, "-I", str(HELPER_SCRIPT), "--uid", str(_sandbox_uid())]
        self._process = subprocess.Popen(
            [*command, "--once"] if once else command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_HELPER_ENV,
            start_new_session=True,
            close_fds=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._to_helper = self._process.stdin.fileno()
        self._from_helper = self._process.stdout.fileno()
        os.set_blocking(self._to_helper, False)
        try:
            self.capabilities = self._read_frame(time.monotonic() + _START_TIMEOUT_S)
        except HelperError:
            self.close()
            raise

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + float(job["time_limit_s"]) + _REPLY_GRACE_S
        body = json.dumps(job).encode()
        self._write_all(struct.pack(">I", len(body)) + body, deadline)
        return self._read_frame(deadline)

    def close(self) -> None:
        """Ask the helper to exit (EOF); kill it if it does not go quickly."""
        for stream in (self._process.stdin, self._process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # A helper that was killed could not remove its scratch directory.
        scratch = getattr(self, "capabilities", {}).get("scratch")
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self._to_helper, select.POLLOUT, deadline)
            try:
                view = view[os.write(self._to_helper, view) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise HelperError(f"helper pipe closed: {exc}") from exc

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        chunks, remaining = [], size
        while remaining:
            self._wait(self._from_helper, select.POLLIN, deadline)
            chunk = os.read(self._from_helper, min(remaining, 1 << 20))
            if not chunk:
                raise HelperError(f"helper exited (code {self._process.poll()})")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self, deadline: float) -> dict[str, Any]:
        (size,) = struct.unpack(">I", self._read_exactly(4, deadline))
        try:
            message: dict[str, Any] = json.loads(self._read_exactly(size, deadline))
        except ValueError as exc:
            raise HelperError(f"helper sent a malformed frame: {exc}") from exc
        return message

    @staticmethod
    def _wait(fd: int, event: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, event)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise HelperError("helper did not answer in time")


def sandbox_error(detail: str) -> dict[str, Any]:
    """A raw result for a run the infrastructure could not carry out."""
    return {"sandbox_error": detail}


class ExecutorPool:
    """Runs raw jobs (dicts for `helper.py`) on `workers` helpers; `submit` returns a Future."""

    def __init__(self, workers: int, *, fast: bool = True) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be at least 1, got {workers}")
        self.workers = workers
        self.fast = fast
        self.fast_path_error: str | None = None
        self.capabilities: dict[str, Any] = {}
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[dict[str, Any]]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._queued = 0
        self._running = 0
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def running(self) -> int:
        return self._running

    def submit(self, job: dict[str, Any]) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor pool is closed")
            if not self._threads:
                self._start_threads()
            self._queued += 1
        self._queue.put((job, future))
        return future

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _start_threads(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"sandbox-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        helper: HelperProcess | None = None
        try:
            while (item := self._queue.get()) is not None:
                job, future = item
                with self._lock:
                    self._queued -= 1
                    self._running += 1
                try:
                    if future.set_running_or_notify_cancel():
                        if helper is None and self.fast and self.fast_path_error is None:
                            helper = self._start_helper()
                        result, helper = self._run(job, helper)
                        future.set_result(result)
                except Exception as exc:  # a bug here must not leave a caller waiting forever
                    if not future.done():
                        future.set_result(sandbox_error(f"sandbox pool error: {type(exc).__name__}: {exc}"))
                finally:
                    with self._lock:
                        self._running -= 1
        finally:
            if helper is not None:
                helper.close()

    def _start_helper(self) -> HelperProcess | None:
        try:
            helper = HelperProcess()
        except (HelperError, OSError) as exc:
            self.fast_path_error = f"warm helper unavailable, using a subprocess per run: {exc}"
            return None
        self.capabilities = helper.capabilities
        return helper

    def _run(
        self, job: dict[str, Any], helper: HelperProcess | None
    ) -> tuple[dict[str, Any], HelperProcess | None]:
        """Run `job`; returns the raw result and the helper to keep (None when it had to go)."""
        if helper is None:
            return self._run_once(job), None
        try:
            return {**helper.run(job), "path": FORKSERVER_PATH}, helper
        except (HelperError, OSError) as exc:
            helper.close()
            return sandbox_error(f"sandbox helper failed: {exc}"), None

    def _run_once(self, job: dict[str, Any]) -> dict[str, Any]:
        try:
            helper = HelperProcess(once=True)
        except (HelperError, OSError) as exc:
            return sandbox_error(f"could not start a sandbox process: {exc}")
        self.capabilities = self.capabilities or helper.capabilities
        try:
            return {**helper.run(job), "path": SUBPROCESS_PATH}
        except (HelperError, OSError) as exc:
            return sandbox_error(f"sandbox process failed: {exc}")
        finally:
            helper.close()
