"""Sandbox failures are not zeros: bounded retries, then None in training and a failure in evaluation;
and the reference-parity options, off by default."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import pytest
from process_helpers import processes_named

from tarot_jobs.curriculum.policy import Phase
from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.pipeline.scoring import score_samples, summarize
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.rewards import reference_format_reward, score_batch, score_completion
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, TestResult, Verdict

ALL = get_policy("static").phases[0]
ECHO = Problem(
    id="echo",
    statement="Print the input.",
    gold_solution="print(input())\n",
    tests=[TestCase(input=f"{i}\n", output=f"{i}\n", tier=t) for i, t in enumerate(Tier)],
)


def fenced(code: str) -> str:
    return f"```python\n{code}```"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(2) as backend:
        yield backend


def test_a_helper_that_dies_mid_run_is_retried_and_the_reward_is_whole() -> None:
    marker = "tsb" + uuid.uuid4().hex[:12]
    program = (
        f"import ctypes, time\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\ntime.sleep(0.3)\n"
        "print(input())\n"
    )
    problem = ECHO.model_copy(update={"tests": ECHO.tests[:1]})
    time_limit_s = 20.0
    with LocalSandbox(1) as sandbox:
        sandbox.run_batch([ExecutionRequest(code="pass", tests=[problem.execution_request("").tests[0]])])
        first_helper = sandbox.capabilities["pid"]

        def kill_the_helper_once_the_program_runs() -> None:
            deadline = time.monotonic() + time_limit_s
            while not processes_named(marker) and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(first_helper, signal.SIGKILL)

        killer = threading.Thread(target=kill_the_helper_once_the_program_runs)
        killer.start()
        detail = score_completion(
            problem, fenced(program), ALL, sandbox, time_limit_s=time_limit_s, retries=2
        )
        killer.join()
        assert sandbox.capabilities["pid"] != first_helper  # it did die, and the retry ran elsewhere
    assert detail.reward == 1.0 and not detail.sandbox_failed, detail


class FailingFor:
    """The sandbox boundary failing for some programs: answers `sandbox_error` for code containing
    `marker` and runs the rest on a real local sandbox. Counts the attempts for the failing code."""

    def __init__(self, sandbox: LocalSandbox, marker: str) -> None:
        self.sandbox, self.marker, self.failed_attempts = sandbox, marker, 0

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        real = iter(self.sandbox.run_batch([r for r in requests if self.marker not in r.code]))
        answers = []
        for request in requests:
            if self.marker in request.code:
                self.failed_attempts += 1
                failed = TestResult(status=Verdict.SANDBOX_ERROR, detail="helper died")
                answers.append(ExecutionResult(results=[failed] * len(request.tests), path="test-double"))
            else:
                answers.append(next(real))
        return answers


def test_a_failure_that_persists_gives_none_after_bounded_retries(sandbox: LocalSandbox) -> None:
    backend = FailingFor(sandbox, "FAIL")
    details = score_batch(
        [(ECHO, fenced("print(input())  # FAIL\n")), (ECHO, fenced("print(input())\n"))],
        ALL,
        backend,
        retries=2,
    )
    assert [d.reward for d in details] == [None, 1.0]  # None: the trainer drops that sample, never a 0
    assert backend.failed_attempts == 3


def test_evaluation_counts_a_failed_execution_as_failed(sandbox: LocalSandbox) -> None:
    backend = FailingFor(sandbox, "FAIL")
    completions = [[fenced("print(input())\n"), fenced("print(input())  # FAIL\n")]]
    scores = score_samples([ECHO], completions, backend, time_limit_s=5, memory_limit_mb=256)
    summary = summarize(scores, ks=(1,))
    # Left out, the failed sample would make pass@1 1.0; counted as failed it is 0.5.
    assert summary["pass@1"]["overall"] == pytest.approx(0.5)
    assert summary["pass@1"]["basic"] == pytest.approx(0.5)
    assert summary["counts"]["failed_executions"] == 1 and summary["counts"]["solved"] == 1
    assert summary["test_pass_rate"]["edge"] == pytest.approx(0.5)
    assert [s.record(i)["solves"] for i, s in enumerate(scores[0])] == [True, False]


def test_parity_strip_lines_is_off_by_default(sandbox: LocalSandbox) -> None:
    indented = fenced("print('  ' + input())\n")
    assert score_completion(ECHO, indented, ALL, sandbox).reward == 0.0
    assert score_completion(ECHO, indented, ALL, sandbox, strip_lines=True).reward == 1.0


def test_parity_unit_weight_for_single_tier_phases_in_raw_mode(sandbox: LocalSandbox) -> None:
    basic_only = Phase(start=0.0, end=1.0, tiers=frozenset({Tier.BASIC}), weights={Tier.BASIC: 0.25})
    gold = fenced(ECHO.gold_solution)
    assert score_completion(ECHO, gold, basic_only, sandbox, normalize=False).reward == 0.25
    unit = score_completion(ECHO, gold, basic_only, sandbox, normalize=False, unit_weight_single_tier=True)
    assert unit.reward == 1.0
    normalised = score_completion(ECHO, gold, basic_only, sandbox, unit_weight_single_tier=True)
    assert normalised.reward == 1.0  # normalised rewards are unchanged by it


def test_parity_reference_format_reward() -> None:
    good = "<think>\nplan\n</think>\n<answer>\n```python\nprint(1)\n```\n</answer>"
    assert reference_format_reward(
        [good, "```python\nprint(1)\n```", "<think>x</think><answer>y</answer>"]
    ) == [
        1.0,
        0.0,
        0.0,
    ]
