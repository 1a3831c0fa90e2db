"""pass@k per problem and the bootstrap interval on a gain (tarot_jobs/pipeline/confidence.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tarot_jobs.pipeline.confidence import bootstrap_mean, gain_matrix, pass_at_k_by_problem


def _brute_pass_at_k(solved: list[bool], k: int) -> float:
    """The share of the k-subsets of the samples that hold a solving one (what pass@k estimates)."""
    subsets = list(itertools.combinations(solved, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c", [(8, 0), (8, 1), (8, 3), (8, 8), (5, 2), (6, 5)])
def test_pass_at_k_is_the_share_of_k_subsets_that_solve(n: int, c: int) -> None:
    solved = [True] * c + [False] * (n - c)
    outcomes = [("p", s) for s in solved] + [("q", False)] * n
    for k in (1, 2, 4, n):
        estimate = pass_at_k_by_problem(outcomes, k)
        assert estimate["p"] == pytest.approx(_brute_pass_at_k(solved, k))
        assert estimate["q"] == 0.0
    assert pass_at_k_by_problem(outcomes, 1)["p"] == pytest.approx(c / n)


def test_gain_matrix_pairs_problems_by_id_and_refuses_other_problems() -> None:
    before = [{"a": 0.25, "b": 0.5}, {"b": 0.0, "a": 0.0}]
    after = [{"b": 1.0, "a": 0.5}, {"a": 0.125, "b": 0.5}]
    assert gain_matrix(before, after).tolist() == [[0.25, 0.5], [0.125, 0.5]]
    with pytest.raises(ValueError, match="other problems"):
        gain_matrix(before, [{"a": 1.0, "b": 1.0}, {"a": 1.0, "c": 1.0}])
    with pytest.raises(ValueError, match="one before and one after"):
        gain_matrix(before, after[:1])


def test_bootstrap_collapses_on_constant_gains_and_is_seeded() -> None:
    flat = bootstrap_mean(np.full((3, 128), 0.125), resamples=500)
    assert (flat.estimate, flat.low, flat.high) == pytest.approx((0.125, 0.125, 0.125))
    values = np.random.default_rng(1).normal(0.1, 0.3, (3, 128))
    assert bootstrap_mean(values, resamples=500, seed=7) == bootstrap_mean(values, resamples=500, seed=7)


def test_bootstrap_interval_has_the_normal_width_and_covers_the_mean() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.2, 0.5, 400)  # one seed: problems only
    interval = bootstrap_mean(values, resamples=2000)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert interval.low < values.mean() < interval.high
    assert (interval.high - interval.low) / 2 == pytest.approx(half_width, rel=0.15)
    assert interval.contains(0.2) and not interval.contains(0.0)


def test_seed_to_seed_spread_widens_the_interval() -> None:
    """Three seeds that disagree by 20 points: resampling seeds must show it, problems alone would not."""
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 0.05, (3, 128))
    agreeing = bootstrap_mean(noise + 0.1, resamples=2000)
    disagreeing = bootstrap_mean(noise + np.array([[-0.1], [0.1], [0.3]]), resamples=2000)
    assert agreeing.estimate == pytest.approx(disagreeing.estimate, abs=1e-9)
    assert disagreeing.high - disagreeing.low > 5 * (agreeing.high - agreeing.low)
    assert disagreeing.contains(0.0) and not agreeing.contains(0.0)
