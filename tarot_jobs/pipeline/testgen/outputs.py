"""Candidate inputs → tests whose expected outputs the gold solution computed.

Per problem, the candidates are taken tier by tier (basic, intermediate, complex, edge): an input the
problem already has, or one kept in an earlier tier, is a duplicate and is dropped (inputs are compared
after trimming trailing whitespace, which a stdin reader does not see). The rest run once through the
gold solution in the sandbox with no expected output (verdict `completed`): its stdout becomes the
expected output; a crash (an error exit, the memory or output limit) or a timeout drops the input.
A sandbox failure says nothing about an input: the request is sent again, and when it still fails the
result says so in `failure` (the problem is left for a rerun; its inputs count as not written).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tarot_jobs.problems.model import ALL_TIERS, TestCase, Tier
from tarot_jobs.problems.untested import UntestedProblem
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, SandboxBackend, TestSpec, Verdict


class DropReason(StrEnum):
    UNPARSEABLE = "unparseable"  # the model's answer (or an item of it) is not a string input
    SURPLUS = "surplus"  # more inputs than asked for
    DUPLICATE = "duplicate"
    CRASH = "crash"
    TIMEOUT = "timeout"
    WRONG_OUTPUT = "wrong_output"  # `data check`: the gold solution's output changed between two runs
    PROBLEM_NOT_WRITTEN = "problem_not_written"  # a good test of a problem left out (e.g. a tier is empty)


_DROPPED_BY_VERDICT: dict[Verdict, DropReason] = {
    Verdict.TIMEOUT: DropReason.TIMEOUT,
    Verdict.RUNTIME_ERROR: DropReason.CRASH,
    Verdict.MEMORY_LIMIT: DropReason.CRASH,
    Verdict.OUTPUT_LIMIT: DropReason.CRASH,
}


@dataclass
class GoldTests:
    """The tests the gold solution answered, and per tier how many inputs were dropped and why."""

    tests: list[TestCase] = field(default_factory=list)
    failure: str = ""  # the sandbox could not run the gold solution, even after retries
    dropped: dict[Tier, Counter[DropReason]] = field(
        default_factory=lambda: {t: Counter() for t in ALL_TIERS}
    )


def gold_tests(
    problem: UntestedProblem,
    candidates: Mapping[Tier, Sequence[str]],
    backend: SandboxBackend,
    *,
    timeout_s: float,
    memory_limit_mb: int,
    retries: int,
    reason: str,
) -> GoldTests:
    """Run the gold solution on the unique candidates; `reason` is written into every kept test."""
    result = GoldTests()
    seen = {_key(test.input) for test in problem.tests}
    unique: list[tuple[Tier, str]] = []
    for tier in ALL_TIERS:
        for text in candidates.get(tier, ()):
            if _key(text) in seen:
                result.dropped[tier][DropReason.DUPLICATE] += 1
            else:
                seen.add(_key(text))
                unique.append((tier, text))
    if not unique:
        return result
    request = ExecutionRequest(
        code=problem.gold_solution,
        tests=[TestSpec(input=text, output=None) for _, text in unique],
        time_limit_s=timeout_s,
        memory_limit_mb=memory_limit_mb,
    )
    answer = _run(backend, request, retries)
    if answer.infrastructure_failed:
        details = sorted({r.detail for r in answer.results if r.status is Verdict.SANDBOX_ERROR})
        result.failure = f"the sandbox failed to run the gold solution: {'; '.join(details)[:300]}"
        for tier, _ in unique:
            result.dropped[tier][DropReason.PROBLEM_NOT_WRITTEN] += 1
        return result
    for (tier, text), outcome in zip(unique, answer.results, strict=True):
        if outcome.status is Verdict.COMPLETED:
            result.tests.append(TestCase(input=text, output=outcome.stdout, tier=tier, reason=reason))
        else:
            result.dropped[tier][_DROPPED_BY_VERDICT.get(outcome.status, DropReason.CRASH)] += 1
    return result


def _run(backend: SandboxBackend, request: ExecutionRequest, retries: int) -> ExecutionResult:
    """The result of the first run the sandbox did not fail on, or the last try's."""
    for _ in range(retries + 1):
        (answer,) = backend.run_batch([request])
        if not answer.infrastructure_failed:
            break
    return answer


def _key(text: str) -> str:
    """What a stdin reader sees of an input: lines without trailing spaces, no trailing blank lines."""
    return "\n".join(line.rstrip() for line in text.rstrip().split("\n"))
