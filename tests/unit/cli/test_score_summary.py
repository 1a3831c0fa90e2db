"""`tarot score`'s summary: the mean reward counts a completion the sandbox failed on as 0, and says so."""

from __future__ import annotations

from tarot_jobs.cli.score import _summary
from tarot_jobs.problems.model import Tier
from tarot_jobs.rewards.tiered import RewardDetail, TierTally


def detail(reward: float | None, passed: int) -> RewardDetail:
    return RewardDetail(
        problem_id="p",
        reward=reward,
        code_found=True,
        sandbox_failed=reward is None,
        tiers={Tier.BASIC: TierTally(passed=passed, total=2)},
    )


def test_a_completion_the_sandbox_failed_on_counts_zero_in_the_mean() -> None:
    text = _summary([detail(1.0, 2), detail(0.5, 1), detail(None, 0)]).plain
    assert text.splitlines() == [
        "mean reward 0.500 over 3 completion(s); tests passed: basic 3/6",
        "1 completion(s) not scored, counted 0: the sandbox failed (mean over the 2 scored: 0.750)",
    ]


def test_without_sandbox_failures_the_summary_is_one_line() -> None:
    assert _summary([detail(1.0, 2), detail(0.0, 0)]).plain == (
        "mean reward 0.500 over 2 completion(s); tests passed: basic 2/4"
    )
