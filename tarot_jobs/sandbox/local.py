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
from tarot_jobs.sandbox.pool import (
    FORKSERVER_PATH,
    SUBPROCESS_PATH,
    ExecutorPool,
    JailOptions,
    isolation_label,
)
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, ProgramKind, TestSpec, Verdict
from tarot_jobs.sandbox.verdicts import to_test_result

SELF_TEST = (
    ExecutionRequest(code="print(int(input()) * 2)", tests=[TestSpec(input="21", output="42")]),
    ExecutionRequest(
        code="def f(x):\n    return x * 2\n",
        kind=ProgramKind.FUNCTION,
        entry_point="f",
        tests=[TestSpec(input="assert f(21) == 42")],
    ),
)


def default_workers() -> int:
    return len(os.sched_getaffinity(0))


class LocalSandbox:
    """A `SandboxBackend` that runs every test of every request on local helpers.

    Tests run in parallel across `workers` helpers (default: all usable cores),
    each in its own jail (`jail`: see JailOptions; by default the environment's
    TAROT_SANDBOX_POD_BOUNDARY decides whether a refused namespace is tolerated).
    `fast=False` forces the plain-subprocess path (a fresh interpreter per test).
    Thread-safe; close it (or use it as a context manager) to stop the helpers.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        limits: RunLimits | None = None,
        fast: bool = True,
        jail: JailOptions | None = None,
    ) -> None:
        self.limits = limits or RunLimits()
        self._pool = ExecutorPool(workers or default_workers(), fast=fast, jail=jail)

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
        """The isolation the helpers reported (namespaces entered and refused, root, /proc, uid,
        seccomp) and the program helper's pid; empty before the first run."""
        return dict(self._pool.capabilities)

    @property
    def isolation(self) -> str:
        """The isolation in effect, as it appears in every result's `path`."""
        return isolation_label(self._pool.capabilities)

    @property
    def fast_path_error(self) -> str | None:
        """Why runs fell back to a subprocess each (None while the warm helpers work)."""
        return self._pool.fast_path_error

    @property
    def failing(self) -> str | None:
        """Why the helpers cannot run programs now (runs keep ending in sandbox errors); None if they can."""
        return self._pool.failing

    def self_test(self) -> str | None:
        """Run known programs (stdin/stdout and function style) that must pass; None if they do,
        else why not. A sandbox that cannot run them would turn every test into a sandbox error."""
        results = self.run_batch(SELF_TEST)
        for request, result in zip(SELF_TEST, results, strict=True):
            [test] = result.results
            if test.status is not Verdict.PASSED:
                return (
                    f"the sandbox self-test ({request.kind.value}) got {test.status.value}, not passed:"
                    f" {test.detail or test.stderr[-300:]} (path {result.path};"
                    f" {self.fast_path_error or 'warm helpers up'})"
                )
        return None

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
        """The program helper's part (never a test) and, for function style, the checker's part."""
        function_style = request.kind is ProgramKind.FUNCTION
        program = {
            "code": request.code,
            "input": "" if function_style else test.input,
            "time_limit_s": request.time_limit_s,
            "memory_limit_mb": request.memory_limit_mb,
            "max_output_bytes": self.limits.max_output_bytes,
            "max_processes": self.limits.max_processes,
            "max_open_files": self.limits.max_open_files,
            "max_file_bytes": self.limits.max_file_bytes,
        }
        checker = None
        if function_style:
            checker = {
                "tests": test.input,
                "entry_point": request.entry_point,
                "prelude": request.checker_prelude,
                # A little beyond the program's limit, so that a slow program is the program's timeout.
                "time_limit_s": request.time_limit_s + 0.25,
                "max_reply_bytes": self.limits.max_output_bytes,
            }
        return {"program": program, "checker": checker}

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
                strip_lines=request.strip_lines,
            )
            for raw, test in zip(raws, request.tests, strict=True)
        ]
        paths = sorted({raw["path"] for raw in raws if "path" in raw})
        # The weakest path any test took (a subprocess, or a pod-boundary fallback) is the request's.
        path = next((p for p in paths if p.startswith(SUBPROCESS_PATH)), paths[0] if paths else "")
        if not path:
            mode = FORKSERVER_PATH if self._pool.fast and not self._pool.fast_path_error else SUBPROCESS_PATH
            path = f"{mode}+{self.isolation}"
        return ExecutionResult(results=results, path=path)
