"""Turning a helper's raw account of one run into a verdict."""

from __future__ import annotations

import signal
from typing import Any

from tarot_jobs.sandbox.compare import outputs_match
from tarot_jobs.sandbox.types import ProgramKind, TestResult, TestSpec, Verdict

# Signals a process gets when an allocation fails under RLIMIT_AS in C code (not as MemoryError).
_MEMORY_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGKILL}
_MEMORY_EXCEPTIONS = {"MemoryError"}


def _truncate(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + f"\n... [truncated {len(text) - cap} chars]"


def _verdict(
    raw: dict[str, Any],
    test: TestSpec,
    kind: ProgramKind,
    memory_limit_mb: int,
    time_limit_s: float,
    float_tolerance: float | None,
) -> tuple[Verdict, str]:
    exception = raw.get("exception")
    sig = raw.get("signal")
    if raw.get("setup_error"):
        if "MemoryError" in raw["setup_error"]:
            return Verdict.MEMORY_LIMIT, "no memory left to start the program"
        return Verdict.SANDBOX_ERROR, f"sandbox setup failed: {raw['setup_error']}"
    if raw.get("output_exceeded"):
        return Verdict.OUTPUT_LIMIT, "stdout+stderr exceeded the output limit"
    if raw.get("timed_out"):
        return Verdict.TIMEOUT, f"wall-clock limit of {time_limit_s:g}s exceeded"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and raw.get("cpu_ms", 0) >= time_limit_s * 1000):
        return Verdict.TIMEOUT, "CPU-time limit exceeded"
    near_memory_limit = raw.get("maxrss_kb", 0) * 1024 >= 0.8 * (memory_limit_mb << 20)
    if exception in _MEMORY_EXCEPTIONS or (sig in _MEMORY_SIGNALS and near_memory_limit):
        return Verdict.MEMORY_LIMIT, f"memory limit of {memory_limit_mb} MB exceeded"
    if sig is not None:
        return Verdict.RUNTIME_ERROR, f"killed by signal {signal.Signals(sig).name}"
    if kind is ProgramKind.FUNCTION:
        if exception == "AssertionError":
            return Verdict.WRONG_ANSWER, "an assertion failed"
        if exception:
            return Verdict.RUNTIME_ERROR, f"raised {exception}"
        if not raw.get("finished"):
            return Verdict.RUNTIME_ERROR, f"exited (code {raw.get('exit_code')}) before the tests finished"
        return Verdict.PASSED, ""
    if exception:
        return Verdict.RUNTIME_ERROR, f"raised {exception}"
    if raw.get("exit_code") != 0:
        return Verdict.RUNTIME_ERROR, f"exit code {raw.get('exit_code')}"
    if test.output is None:
        return Verdict.COMPLETED, ""
    if outputs_match(raw.get("stdout", ""), test.output, float_tolerance):
        return Verdict.PASSED, ""
    return Verdict.WRONG_ANSWER, "output differs from the expected output"


def to_test_result(
    raw: dict[str, Any],
    test: TestSpec,
    *,
    kind: ProgramKind,
    memory_limit_mb: int,
    time_limit_s: float,
    float_tolerance: float | None,
    text_cap: int,
) -> TestResult:
    if "sandbox_error" in raw:
        return TestResult(status=Verdict.SANDBOX_ERROR, detail=raw["sandbox_error"])
    status, detail = _verdict(raw, test, kind, memory_limit_mb, time_limit_s, float_tolerance)
    return TestResult(
        status=status,
        exit_code=raw.get("exit_code"),
        signal=raw.get("signal"),
        wall_ms=round(raw.get("wall_ms", 0.0), 3),
        cpu_ms=round(raw.get("cpu_ms", 0.0), 3),
        stdout=_truncate(raw.get("stdout", ""), text_cap),
        stderr=_truncate(raw.get("stderr", ""), text_cap),
        detail=detail,
    )
