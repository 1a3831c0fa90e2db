"""Held-out pass@k per problem and bootstrap confidence intervals on a gain (docs/learning.md).

A learning experiment compares held-out pass@1 before and after training over
several seeds. Per seed s and problem p, the gain is g[s, p] = after - before,
each side the unbiased pass@1 of n samples (scoring.pass_at_k). The gain is the
mean of g; its 95% interval comes from a two-level bootstrap that resamples
the seeds and, independently, the problems (the same problem draw for every
seed: the problems are shared), so both seed-to-seed and problem-to-problem
variation widen it. Seeded, so the same figures give the same interval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tarot_jobs.pipeline.scoring import pass_at_k


def pass_at_k_by_problem(outcomes: Iterable[tuple[str, bool]], k: int) -> dict[str, float]:
    """Unbiased pass@k per problem from (problem_id, solved) pairs, one pair per sample."""
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for problem_id, solved in outcomes:
        tallies[problem_id][0] += 1
        tallies[problem_id][1] += int(solved)
    return {pid: pass_at_k(n, c, k) for pid, (n, c) in tallies.items()}


def gain_matrix(before: Sequence[Mapping[str, float]], after: Sequence[Mapping[str, float]]) -> np.ndarray:
    """seeds x problems matrix of after - before; every seed must score the same problems."""
    if len(before) != len(after) or not before:
        raise ValueError(f"need one before and one after per seed, got {len(before)} and {len(after)}")
    problems = sorted(before[0])
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        if sorted(b) != problems or sorted(a) != problems:
            raise ValueError(f"seed #{i} was scored on other problems than seed #0")
    return np.array([[a[p] - b[p] for p in problems] for b, a in zip(before, after, strict=True)])


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def scaled(self, factor: float) -> Interval:
        return Interval(self.estimate * factor, self.low * factor, self.high * factor)


def bootstrap_mean(
    values: np.ndarray, *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of a seeds x problems matrix (a 1-D array is one seed) with a percentile bootstrap interval.

    Each resample draws seeds with replacement and problems with replacement (one problem draw shared by
    the drawn seeds). With one seed only the problems are resampled, so the interval then says nothing
    about seed-to-seed variation.
    """
    matrix = np.atleast_2d(np.asarray(values, dtype=float))
    if matrix.size == 0:
        raise ValueError("no values to bootstrap")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    seeds, problems = matrix.shape
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, seeds, seeds)
        cols = rng.integers(0, problems, problems)
        means[i] = matrix[np.ix_(rows, cols)].mean()
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(matrix.mean()), float(low), float(high))
