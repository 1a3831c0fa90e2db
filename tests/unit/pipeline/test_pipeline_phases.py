"""Step budgets per curriculum phase."""

from __future__ import annotations

import pytest

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.pipeline.training.phases import phase_at_step, plan_phases, split_steps, total_steps
from tarot_jobs.spec.model import TarotRunSpec


def _spec(**training: object) -> TarotRunSpec:
    base = {"numGenerations": 4, "perDeviceTrainBatchSize": 8, "gradientAccumulationSteps": 1}
    return TarotRunSpec.model_validate({"training": {**base, **training}})


@pytest.mark.parametrize("total", [4, 5, 7, 8, 10, 33, 101])
def test_split_adds_up_and_gives_every_phase_a_step(total: int) -> None:
    steps = split_steps([0.2, 0.2, 0.2, 0.4], total)
    assert sum(steps) == total
    assert min(steps) >= 1


def test_split_follows_the_fractions() -> None:
    assert split_steps([0.2, 0.2, 0.2, 0.4], 10) == [2, 2, 2, 4]
    assert split_steps([0.2, 0.2, 0.2, 0.4], 16) == [3, 3, 3, 7]
    # A tiny share still gets one step; the largest phase gives it up.
    assert split_steps([0.01, 0.99], 10) == [1, 9]


def test_split_refuses_fewer_steps_than_phases() -> None:
    with pytest.raises(ValueError, match="cannot cover"):
        split_steps([0.5, 0.5], 1)


def test_max_steps_is_the_budget() -> None:
    plans = plan_phases(_spec(maxSteps=10), get_policy("forward"), train_problems=40)
    assert [p.steps for p in plans] == [2, 2, 2, 4]
    assert [p.step_offset for p in plans] == [0, 2, 4, 6]
    assert plans[1].tiers == ["basic", "intermediate"]
    assert plans[0].weights == {"basic": 0.25}


def test_epochs_count_prompts_per_step() -> None:
    # 8 completions per step / 4 generations = 2 prompts per step; 40 problems -> 20 steps per epoch.
    assert total_steps(_spec(epochs=1.0), get_policy("forward"), 40) == 20
    assert total_steps(_spec(epochs=0.5), get_policy("static"), 40) == 10


def test_three_epoch_policies_stretch_the_budget() -> None:
    policy = get_policy("forward-3epoch")
    assert policy.epochs == 3
    assert total_steps(_spec(), policy, 40) == 60
    plans = plan_phases(_spec(), policy, 40)
    assert sum(p.steps for p in plans) == 60


def test_budget_is_at_least_one_step_per_phase() -> None:
    assert total_steps(_spec(maxSteps=1), get_policy("forward"), 40) == 4


def test_each_run_wide_step_belongs_to_one_phase() -> None:
    plans = plan_phases(_spec(maxSteps=10), get_policy("forward"), train_problems=40)
    assert [p.end_step for p in plans] == [2, 4, 6, 10]
    # The phase that trains the next step after `done` steps (the reward's phase at trl's global_step).
    assert [phase_at_step(plans, done).index for done in range(10)] == [0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    assert phase_at_step(plans, 10).index == 3  # trl's last call, past the budget
