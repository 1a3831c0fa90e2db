"""Test validity: run every gold solution on every test of its problem, drop the bad tests.

TAROT's tests were written by an LLM, so some expect the wrong output, take too
long or make the gold solution crash. Such a test is invalid and dropped; a
problem stays usable only while it keeps a valid test in every tier (unless
`require_all_tiers=False`). A sandbox failure says nothing about a test: the
request is sent again (`retries` times, as the reward does), and what still
fails is reported apart as an infrastructure error, never as an invalid test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

from tarot_jobs.problems.model import ALL_TIERS, Problem, TestCase, Tier
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, SandboxBackend, TestResult, Verdict


class InvalidReason(StrEnum):
    WRONG_OUTPUT = "wrong_output"
    TIMEOUT = "timeout"
    CRASH = "crash"


_VALID = {Verdict.PASSED, Verdict.COMPLETED}
_INVALID_REASONS: dict[Verdict, InvalidReason] = {
    Verdict.WRONG_ANSWER: InvalidReason.WRONG_OUTPUT,
    Verdict.TIMEOUT: InvalidReason.TIMEOUT,
    Verdict.RUNTIME_ERROR: InvalidReason.CRASH,
    Verdict.MEMORY_LIMIT: InvalidReason.CRASH,
    Verdict.OUTPUT_LIMIT: InvalidReason.CRASH,
}
_DETAIL_CHARS = 200


class TierCounts(BaseModel):
    total: int = 0
    valid: int = 0
    invalid: int = 0


class InvalidTest(BaseModel):
    __test__ = False

    problem_id: str
    tier: Tier | None
    test_index: int = Field(description="Index of the test in the problem as loaded (0-based).")
    reason: InvalidReason
    detail: str = ""


class InfrastructureError(BaseModel):
    """A test the sandbox could not judge (verdict `sandbox_error`): neither valid nor invalid."""

    problem_id: str
    tier: Tier | None
    test_index: int
    detail: str = ""


class UnusableProblem(BaseModel):
    problem_id: str
    why: str
    missing_tiers: list[Tier] = Field(default_factory=list)


class CheckReport(BaseModel):
    """The outcome of a check; `model_dump(mode="json")` is what `tarot data check --json` prints."""

    problems: int
    usable_problems: int
    tiers: dict[Tier, TierCounts]
    untiered: TierCounts = Field(description="Tests with no tier (e.g. the statement's example).")
    invalid: list[InvalidTest]
    unusable: list[UnusableProblem]
    infrastructure_errors: list[InfrastructureError]
    cleaned: list[Problem] = Field(
        exclude=True, description="The usable problems with only their valid tests, in input order."
    )


@dataclass(frozen=True)
class _Verdicts:
    """What the check concluded about one problem's tests."""

    valid: list[TestCase]
    invalid: list[InvalidTest]
    infrastructure: list[InfrastructureError]


def check_problems(
    problems: Sequence[Problem],
    backend: SandboxBackend,
    *,
    timeout_s: float = 5.0,
    memory_limit_mb: int = 512,
    require_all_tiers: bool = True,
    chunk_size: int = 16,
    chunks_in_flight: int = 2,
    retries: int = 2,
    progress: Callable[[int], None] | None = None,
) -> CheckReport:
    """Run each problem's gold solution on all its tests and judge every test.

    Problems go to `backend.run_batch` in chunks of `chunk_size` (one request
    per problem; the backend spreads a chunk's tests over its workers), with
    `chunks_in_flight` chunks running at once so that a slow test in one chunk
    does not leave the workers idle; the backend must be thread-safe (the local
    and HTTP sandboxes are). `progress(n)` is called with the number of tests
    judged after each chunk. A request with a `sandbox_error` verdict is run again, at most `retries`
    times. SandboxUnavailable from the backend propagates.
    """
    if chunk_size < 1 or chunks_in_flight < 1:
        raise ValueError(
            f"chunk_size and chunks_in_flight must be >= 1, got {chunk_size}, {chunks_in_flight}"
        )
    verdicts: list[_Verdicts] = []
    for chunk, results in _run_chunks(
        problems, backend, timeout_s, memory_limit_mb, chunk_size, chunks_in_flight, retries
    ):
        for problem, result in zip(chunk, results, strict=True):
            verdicts.append(_judge(problem, result))
        if progress is not None:
            progress(sum(len(problem.tests) for problem in chunk))
    return _report(problems, verdicts, require_all_tiers)


def _run_chunks(
    problems: Sequence[Problem],
    backend: SandboxBackend,
    timeout_s: float,
    memory_limit_mb: int,
    chunk_size: int,
    chunks_in_flight: int,
    retries: int,
) -> Iterator[tuple[Sequence[Problem], list[ExecutionResult]]]:
    """(chunk, results) pairs in input order, keeping up to `chunks_in_flight` chunks running."""
    chunks = [problems[i : i + chunk_size] for i in range(0, len(problems), chunk_size)]

    def run(chunk: Sequence[Problem]) -> list[ExecutionResult]:
        requests = [
            p.execution_request(p.gold_solution, time_limit_s=timeout_s, memory_limit_mb=memory_limit_mb)
            for p in chunk
        ]
        return _run_with_retries(backend, requests, retries)

    with ThreadPoolExecutor(max_workers=chunks_in_flight, thread_name_prefix="check") as pool:
        pending: list[tuple[Sequence[Problem], Future[list[ExecutionResult]]]] = []
        try:
            for chunk in chunks:
                pending.append((chunk, pool.submit(run, chunk)))
                if len(pending) >= chunks_in_flight:
                    first, future = pending.pop(0)
                    yield first, future.result()
            for first, future in pending:
                yield first, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def _run_with_retries(
    backend: SandboxBackend, requests: list[ExecutionRequest], retries: int
) -> list[ExecutionResult]:
    """One result per request; those the sandbox failed on are run again, at most `retries` times."""
    results: list[ExecutionResult] = []
    pending = list(range(len(requests)))
    for _ in range(retries + 1):
        answers = backend.run_batch([requests[i] for i in pending])
        if len(answers) != len(pending):
            raise RuntimeError(f"sandbox answered {len(answers)} results for {len(pending)} requests")
        if not results:
            results = answers
        else:
            for index, answer in zip(pending, answers, strict=True):
                results[index] = answer
        pending = [i for i in pending if results[i].infrastructure_failed]
        if not pending:
            break
    return results


def _judge(problem: Problem, result: ExecutionResult) -> _Verdicts:
    valid: list[TestCase] = []
    invalid: list[InvalidTest] = []
    infrastructure: list[InfrastructureError] = []
    for index, (test, outcome) in enumerate(zip(problem.tests, result.results, strict=True)):
        if outcome.status in _VALID:
            valid.append(test)
        elif outcome.status is Verdict.SANDBOX_ERROR:
            infrastructure.append(
                InfrastructureError(
                    problem_id=problem.id, tier=test.tier, test_index=index, detail=outcome.detail
                )
            )
        else:
            reason = _INVALID_REASONS[outcome.status]
            invalid.append(
                InvalidTest(
                    problem_id=problem.id,
                    tier=test.tier,
                    test_index=index,
                    reason=reason,
                    detail=_detail(outcome, test, reason),
                )
            )
    return _Verdicts(valid, invalid, infrastructure)


def _detail(outcome: TestResult, test: TestCase, reason: InvalidReason) -> str:
    """A short human explanation: the expected/actual output or the last line of the traceback."""
    if reason is InvalidReason.WRONG_OUTPUT and test.output is not None:
        text = f"expected {_clip(test.output)!r}, got {_clip(outcome.stdout)!r}"
    elif reason is InvalidReason.CRASH and outcome.stderr.strip():
        # Lines end at newlines only: a carriage return in the last one is shown (escaped), not obeyed.
        last = outcome.stderr.strip().split("\n")[-1]
        text = f"{outcome.detail}: {last}"
    else:
        text = outcome.detail
    return _clip(text)


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def _report(problems: Sequence[Problem], verdicts: list[_Verdicts], require_all_tiers: bool) -> CheckReport:
    tiers = {tier: TierCounts() for tier in ALL_TIERS}
    untiered = TierCounts()
    unusable: list[UnusableProblem] = []
    cleaned: list[Problem] = []
    for problem, verdict in zip(problems, verdicts, strict=True):
        for test in problem.tests:
            _counts(tiers, untiered, test.tier).total += 1
        for test in verdict.valid:
            _counts(tiers, untiered, test.tier).valid += 1
        for bad in verdict.invalid:
            _counts(tiers, untiered, bad.tier).invalid += 1
        why, missing = _unusable_because(problem, verdict, require_all_tiers)
        if why:
            unusable.append(UnusableProblem(problem_id=problem.id, why=why, missing_tiers=missing))
        else:
            cleaned.append(problem.model_copy(update={"tests": verdict.valid}))
    return CheckReport(
        problems=len(problems),
        usable_problems=len(cleaned),
        tiers=tiers,
        untiered=untiered,
        invalid=[bad for verdict in verdicts for bad in verdict.invalid],
        unusable=unusable,
        infrastructure_errors=[error for verdict in verdicts for error in verdict.infrastructure],
        cleaned=cleaned,
    )


def _counts(tiers: dict[Tier, TierCounts], untiered: TierCounts, tier: Tier | None) -> TierCounts:
    return untiered if tier is None else tiers[tier]


def _unusable_because(
    problem: Problem, verdict: _Verdicts, require_all_tiers: bool
) -> tuple[str, list[Tier]]:
    """Why the problem cannot be used ('' when it can), and the tiers it lacks a valid test in."""
    if verdict.infrastructure:
        return "the sandbox could not judge every test", []
    if not verdict.valid:
        return "no valid test left", []
    if require_all_tiers:
        present = {test.tier for test in verdict.valid}
        missing = [tier for tier in ALL_TIERS if tier not in present]
        if missing:
            return f"no valid test in tier(s) {', '.join(tier.value for tier in missing)}", missing
    return "", []
