"""The in-process sandbox backend: runs requests on a pool of local helpers."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from tarot_jobs.sandbox.limits import RunLimits
from tarot_jobs.sandbox.pool import FORKSERVER_PATH, SUBPROCESS_PATH, ExecutorPool
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, TestSpec
from tarot_jobs.sandbox.verdicts import to_test_result


def default_workers() -> int:
    return len(os.sched_getaffinity(0))


class LocalSandbox:
    """A `SandboxBackend` that runs every test of every request on local helpers.

    Tests run in parallel across `workers` helpers (default: all usable cores).
    `fast=False` forces the plain-subprocess path (a fresh interpreter per test).
    Thread-safe; close it (or use it as a context manager) to stop the helpers.
    """

    def __init__(
        self, workers: int | None = None, *, limits: RunLimits | None = None, fast: bool = True
    ) -> None:
        self.limits = limits or RunLimits()
        self._pool = ExecutorPool(workers or default_workers(), fast=fast)

    @property
    def workers(self) -> int:
        return self._pool.workers

    @property
    def queued_runs(self) -> int:
        return self._pool.queued

    @property
    def running_runs(self) -> int:
        return self._pool.running

    @property
    def capabilities(self) -> dict[str, Any]:
        """What the helpers reported (seccomp, uid drop, ...); empty before the first run."""
        return dict(self._pool.capabilities)

    @property
    def fast_path_error(self) -> str | None:
        """Why runs fell back to a subprocess each (None while the warm helpers work)."""
        return self._pool.fast_path_error

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        futures = [self.submit(request) for request in requests]
        return [future.result() for future in futures]

    async def run_async(self, request: ExecutionRequest) -> ExecutionResult:
        return await asyncio.wrap_future(self.submit(request))

    def submit(self, request: ExecutionRequest) -> Future[ExecutionResult]:
        """Start all tests of `request`; the future resolves when the last one is judged."""
        done: Future[ExecutionResult] = Future()
        raws: list[dict[str, Any] | None] = [None] * len(request.tests)
        remaining = [len(request.tests)]
        lock = threading.Lock()

        def finished(index: int, future: Future[dict[str, Any]]) -> None:
            raws[index] = future.result()
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                try:
                    done.set_result(self._judge(request, [r for r in raws if r is not None]))
                except Exception as exc:  # surface it to the caller instead of never resolving
                    done.set_exception(exc)

        for index, test in enumerate(request.tests):
            self._pool.submit(self._job(request, test)).add_done_callback(functools.partial(finished, index))
        return done

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _job(self, request: ExecutionRequest, test: TestSpec) -> dict[str, Any]:
        return {
            "code": request.code,
            "kind": request.kind.value,
            "input": test.input,
            "time_limit_s": request.time_limit_s,
            "memory_limit_mb": request.memory_limit_mb,
            "max_output_bytes": self.limits.max_output_bytes,
            "max_processes": self.limits.max_processes,
            "max_open_files": self.limits.max_open_files,
            "max_file_bytes": self.limits.max_file_bytes,
        }

    def _judge(self, request: ExecutionRequest, raws: list[dict[str, Any]]) -> ExecutionResult:
        results = [
            to_test_result(
                raw,
                test,
                kind=request.kind,
                memory_limit_mb=request.memory_limit_mb,
                time_limit_s=request.time_limit_s,
                float_tolerance=request.float_tolerance,
                text_cap=self.limits.text_cap_chars,
            )
            for raw, test in zip(raws, request.tests, strict=True)
        ]
        paths = {raw.get("path") for raw in raws}
        degraded = not self._pool.fast or self._pool.fast_path_error is not None
        path = SUBPROCESS_PATH if SUBPROCESS_PATH in paths or degraded else FORKSERVER_PATH
        return ExecutionResult(results=results, path=path)
