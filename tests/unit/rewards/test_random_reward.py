"""The control arm's reward pays at random, whatever the program (tarot_jobs/rewards/control.py)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import pytest

import tarot_jobs.rewards
from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.problems.toy import toy_problems
from tarot_jobs.rewards.control import RandomReward, install
from tarot_jobs.rewards.tiered import TieredReward
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, TestResult, Verdict

STATIC = get_policy("static")


def _block(code: str) -> str:
    return f"```python\n{code}```"


class BrokenSandbox:
    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        failed = TestResult(status=Verdict.SANDBOX_ERROR, detail="helper died")
        return [ExecutionResult(results=[failed for _ in r.tests], path="broken") for r in requests]


def test_random_reward_ignores_the_program_and_is_seeded_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = toy_problems("heldout", 1)[0]
    gold, wrong = _block(problem.gold_solution), _block("print(0)\n")
    problems = {problem.id: problem}
    state = [SimpleNamespace(global_step=s, max_steps=10) for s in (3, 4)]
    with LocalSandbox(1) as sandbox:
        honest = TieredReward(problems, STATIC, sandbox, time_limit_s=5)
        assert honest([""] * 2, [gold, wrong], [problem.id] * 2, state[0]) == [1.0, 0.0]
        monkeypatch.setattr(RandomReward, "seed", 11)
        control = RandomReward(problems, STATIC, sandbox, time_limit_s=5)
        paid = control([""] * 2, [gold, wrong], [problem.id] * 2, state[0])
        swapped = control([""] * 2, [wrong, gold], [problem.id] * 2, state[0])
        assert paid == swapped  # the same draws whichever program sits where
        assert paid[0] != paid[1] and all(0.0 <= r <= 1.0 for r in paid)  # type: ignore[operator]
        assert control.last_details[1].reward == 1.0  # the sandbox still ran and scored it
        assert control([""] * 2, [gold, wrong], problem_id=[problem.id] * 2, trainer_state=state[1]) != paid
        assert control([""] * 2, [gold, wrong], problem_id=[problem.id] * 2, trainer_state=state[0]) == paid
        monkeypatch.setattr(RandomReward, "seed", 12)
        assert control([""] * 2, [gold, wrong], [problem.id] * 2, state[0]) != paid
    broken = RandomReward(problems, STATIC, BrokenSandbox(), time_limit_s=5, retries=0)
    assert broken([""], [gold], [problem.id], state[0]) == [None]  # a failed sample is still dropped


def test_install_swaps_the_reward_the_train_stage_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarot_jobs.rewards, "TieredReward", TieredReward)
    monkeypatch.setattr(RandomReward, "seed", 0)
    install(5)
    from tarot_jobs.rewards import TieredReward as built

    assert built is RandomReward and RandomReward.seed == 5
