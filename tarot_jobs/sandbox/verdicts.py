"""Turning what the supervisor observed of one run into a verdict.

Every input here is an observation of the supervising side: the program
helper's account of the child (exit status, signal, wall and CPU time, peak
memory, the output it read, whether the child's set-up finished before the
program started) and, for function-style tests, the checker's outcome of the
test code it ran itself. The program can choose its output and its return
values, never its verdict: `passed` needs exit status 0 and matching output
(stdin/stdout) or a checker that ran every assertion (function style), and
`sandbox_error` comes only from the pool (a program helper that died, hung or
broke the protocol, a helper that never got the job) or from a child that
failed before the program started. What a program can provoke is its own
failure: a scratch or IPC state the helper could not clear after the run
(`cleanup_error`), a checker that died or stalled on its data (`checker_failed`).
"""

from __future__ import annotations

import signal
from typing import Any

from tarot_jobs.sandbox.compare import outputs_match
from tarot_jobs.sandbox.types import ProgramKind, TestResult, TestSpec, Verdict

# Signals a process gets when an allocation fails under RLIMIT_AS in C code (not as MemoryError).
_MEMORY_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGKILL}


def _truncate(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + f"\n... [truncated {len(text) - cap} chars]"


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _limits(raw: dict[str, Any], memory_limit_mb: int, time_limit_s: float) -> tuple[Verdict, str] | None:
    """The verdict when the child broke a limit or crashed, whatever the kind of test."""
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
    # The traceback's last line is the program's to write: it can only choose between two failures.
    memory_error = raw.get("exit_code") not in (0, None) and _last_line(raw.get("stderr", "")).startswith(
        "MemoryError"
    )
    if memory_error or (sig in _MEMORY_SIGNALS and near_memory_limit):
        return Verdict.MEMORY_LIMIT, f"memory limit of {memory_limit_mb} MB exceeded"
    if sig is not None:
        return Verdict.RUNTIME_ERROR, f"killed by signal {signal.Signals(sig).name}"
    return None


def _stdin_verdict(
    raw: dict[str, Any], test: TestSpec, float_tolerance: float | None, strip_lines: bool
) -> tuple[Verdict, str]:
    if raw.get("exit_code") != 0:
        last = _last_line(raw.get("stderr", ""))
        return Verdict.RUNTIME_ERROR, f"exit code {raw.get('exit_code')}" + (
            f": {last[:200]}" if last else ""
        )
    if test.output is None:
        return Verdict.COMPLETED, ""
    if outputs_match(raw.get("stdout", ""), test.output, float_tolerance, strip_lines=strip_lines):
        return Verdict.PASSED, ""
    return Verdict.WRONG_ANSWER, "output differs from the expected output"


def _function_verdict(program: dict[str, Any], checker: dict[str, Any]) -> tuple[Verdict, str]:
    outcome, detail = checker.get("outcome"), str(checker.get("detail", ""))
    if outcome == "passed":
        if program.get("exit_code") == 0:
            return Verdict.PASSED, ""
        return Verdict.RUNTIME_ERROR, f"the program exited with code {program.get('exit_code')}"
    if outcome == "failed":
        return Verdict.WRONG_ANSWER, detail or "an assertion failed"
    if outcome == "timeout":
        return Verdict.TIMEOUT, "the test did not finish within the time limit"
    if outcome == "program":
        last = _last_line(program.get("stderr", ""))
        return Verdict.RUNTIME_ERROR, f"the program did not answer the test's call ({detail})" + (
            f": {last[:200]}" if last else ""
        )
    if outcome == "checker_failed":
        if checker.get("stalled"):
            return Verdict.TIMEOUT, "the test's checker stalled on the program's data past its time limit"
        return Verdict.RUNTIME_ERROR, f"the test's checker failed on the program's data ({detail})"
    if outcome == "error":
        if checker.get("error") == "MemoryError":
            return Verdict.MEMORY_LIMIT, "MemoryError while the test ran"
        return Verdict.RUNTIME_ERROR, f"raised {checker.get('error')}" + (f": {detail}" if detail else "")
    return Verdict.SANDBOX_ERROR, f"the checker answered an unknown outcome {str(outcome)[:40]!r}"


def to_test_result(
    raw: dict[str, Any],
    test: TestSpec,
    *,
    kind: ProgramKind,
    memory_limit_mb: int,
    time_limit_s: float,
    float_tolerance: float | None,
    text_cap: int,
    strip_lines: bool = False,
) -> TestResult:
    if "sandbox_error" in raw:
        return TestResult(status=Verdict.SANDBOX_ERROR, detail=raw["sandbox_error"])
    program = raw["program"]
    judged = _limits(program, memory_limit_mb, time_limit_s)
    if program.get("cleanup_error"):  # whatever else the run did: it left what cannot be cleared
        judged = (
            Verdict.RUNTIME_ERROR,
            f"the program left its scratch or IPC objects uncleanable ({program['cleanup_error']})",
        )
    if judged is None:
        if kind is ProgramKind.FUNCTION:
            judged = _function_verdict(program, raw["checker"])
        else:
            judged = _stdin_verdict(program, test, float_tolerance, strip_lines)
    status, detail = judged
    return TestResult(
        status=status,
        exit_code=program.get("exit_code"),
        signal=program.get("signal"),
        wall_ms=round(program.get("wall_ms", 0.0), 3),
        cpu_ms=round(program.get("cpu_ms", 0.0), 3),
        stdout=_truncate(program.get("stdout", ""), text_cap),
        stderr=_truncate(program.get("stderr", ""), text_cap),
        detail=detail,
    )
