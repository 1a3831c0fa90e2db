"""Pass rates of sampled completions: what the probe and the evaluation report.

Each completion runs on every test of its problem (all tiers, and untiered
tests such as HumanEval's `check`). A completion *passes a tier* when it
passes every test of that tier, and *solves* the problem when it passes every
test it ran. pass@1 is the mean over problems of the share of passing
samples; pass@k uses the unbiased estimator of Chen et al. (2021),
1 - C(n-c, k) / C(n, k).

A completion whose execution failed after the reward's bounded retries counts
as failed (it solves nothing), and is counted apart as a failed execution.
Leaving it out would let a model that makes the sandbox fail on problems it
cannot solve score higher; in training the same sample is dropped instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tarot_jobs.curriculum.policy import Phase
from tarot_jobs.problems.model import ALL_TIERS, Problem, Tier
from tarot_jobs.rewards.tiered import NOT_RUN, RewardDetail, score_batch
from tarot_jobs.sandbox.types import SandboxBackend, Verdict

ALL_TIERS_PHASE = Phase(start=0.0, end=1.0, tiers=frozenset(ALL_TIERS))
_OK = {Verdict.PASSED.value, Verdict.COMPLETED.value}
OVERALL = "overall"
# Completions per sandbox call: enough to keep the workers busy, few enough to show progress.
_CHUNK = 32


@dataclass(frozen=True)
class SampleScore:
    """What one completion achieved on its problem."""

    problem_id: str
    completion: str
    detail: RewardDetail

    @property
    def execution_failed(self) -> bool:
        """The sandbox failed this completion even after retries (it then passes nothing)."""
        return self.detail.sandbox_failed

    def passes_tier(self, tier: Tier) -> bool | None:
        """True when every test of `tier` passed; None when the problem has no test of it."""
        statuses = [t.status for t in self.detail.tests if t.tier is tier]
        if not statuses:
            return None
        return not self.execution_failed and all(s in _OK for s in statuses)

    @property
    def solves(self) -> bool:
        run = [t.status for t in self.detail.tests if t.status != NOT_RUN]
        return not self.execution_failed and bool(run) and all(s in _OK for s in run)

    def record(self, sample: int) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "sample": sample,
            "completion": self.completion,
            "solves": self.solves,
            "tiers": {t.value: self.passes_tier(t) for t in ALL_TIERS if self.passes_tier(t) is not None},
            "sandbox_failed": self.detail.sandbox_failed,
            "code_found": self.detail.code_found,
            "verdicts": self.detail.verdict_counts(),
        }


def score_samples(
    problems: Sequence[Problem],
    completions: Sequence[Sequence[str]],
    sandbox: SandboxBackend,
    *,
    time_limit_s: float,
    memory_limit_mb: int,
    float_tolerance: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[list[SampleScore]]:
    """Run every completion of every problem on all of its tests."""
    flat = [(problem, text) for problem, texts in zip(problems, completions, strict=True) for text in texts]
    details: list[RewardDetail] = []
    for start in range(0, len(flat), _CHUNK):
        chunk = flat[start : start + _CHUNK]
        details += score_batch(
            chunk,
            ALL_TIERS_PHASE,
            sandbox,
            time_limit_s=time_limit_s,
            memory_limit_mb=memory_limit_mb,
            float_tolerance=float_tolerance,
            run_untiered=True,
        )
        if progress is not None:
            progress(len(chunk))
    scores: list[list[SampleScore]] = []
    cursor = 0
    for problem, texts in zip(problems, completions, strict=True):
        group = details[cursor : cursor + len(texts)]
        scores.append([SampleScore(problem.id, text, d) for text, d in zip(texts, group, strict=True)])
        cursor += len(texts)
    return scores


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c are correct."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def summarize(scores: Sequence[Sequence[SampleScore]], ks: Sequence[int] = (1,)) -> dict[str, Any]:
    """pass@k per tier and overall, test pass rates per tier, and counts."""
    keys: list[Tier | str] = [*ALL_TIERS, OVERALL]
    result: dict[str, Any] = {}
    for k in ks:
        table: dict[str, float | None] = {}
        for key in keys:
            per_problem = []
            for group in scores:
                outcomes = [_outcome(s, key) for s in group]
                judged = [o for o in outcomes if o is not None]
                if len(judged) >= k:
                    per_problem.append(pass_at_k(len(judged), sum(judged), k))
            name = key.value if isinstance(key, Tier) else key
            table[name] = sum(per_problem) / len(per_problem) if per_problem else None
        result[f"pass@{k}"] = table
    flat = [s for group in scores for s in group]
    result["test_pass_rate"] = {tier.value: _test_pass_rate(flat, tier) for tier in ALL_TIERS}
    verdicts: dict[str, int] = {}
    for s in flat:
        for verdict, count in s.detail.verdict_counts().items():
            verdicts[verdict] = verdicts.get(verdict, 0) + count
    failed = sum(1 for s in flat if s.execution_failed)
    result["counts"] = {
        "problems": len(scores),
        "completions": len(flat),
        "scored": len(flat),  # every completion is scored; failed executions as failures
        "failed_executions": failed,  # the stage result's `failedExecutions`
        "sandbox_failed": failed,  # the same number, under the name older readers use
        "code_found": sum(1 for s in flat if s.detail.code_found),
        "solved": sum(1 for s in flat if s.solves),
    }
    result["verdicts"] = dict(sorted(verdicts.items()))
    return result


def _outcome(score: SampleScore, key: Tier | str) -> bool | None:
    return score.solves if key == OVERALL else score.passes_tier(key)  # type: ignore[arg-type]


def _test_pass_rate(scores: Sequence[SampleScore], tier: Tier) -> float | None:
    """Share of the tier's tests passed; a failed execution's tests count as not passed."""
    outcomes = [
        t.status in _OK and not s.execution_failed
        for s in scores
        for t in s.detail.tests
        if t.tier is tier and (t.status != NOT_RUN or s.execution_failed)
    ]
    return sum(outcomes) / len(outcomes) if outcomes else None
