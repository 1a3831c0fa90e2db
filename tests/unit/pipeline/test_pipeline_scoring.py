"""pass@k and per-tier pass rates of sampled completions, judged by the real local sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tarot_jobs.pipeline.model.prompts import reference_answer
from tarot_jobs.pipeline.scoring import pass_at_k, score_samples, summarize
from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.problems.model import Problem
from tarot_jobs.sandbox.local import LocalSandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(2) as backend:
        yield backend


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return load_bundled("heldout")[:2]


def test_pass_at_k_matches_the_estimator() -> None:
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 3, 2) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(1, 0, 2)


def test_gold_solves_and_garbage_fails(sandbox: LocalSandbox, problems: list[Problem]) -> None:
    gold = [reference_answer(p) for p in problems]
    completions = [[gold[0], "```python\nprint('no')\n```"], [gold[1], "no code at all"]]
    scores = score_samples(problems, completions, sandbox, time_limit_s=5, memory_limit_mb=256)
    assert [[s.solves for s in group] for group in scores] == [[True, False], [True, False]]
    summary = summarize(scores, ks=(1, 2))
    assert summary["pass@1"]["overall"] == pytest.approx(0.5)
    assert summary["pass@2"]["overall"] == pytest.approx(1.0)
    for tier in ("basic", "intermediate", "complex", "edge"):
        assert summary["pass@1"][tier] == pytest.approx(0.5)
    assert summary["counts"]["code_found"] == 3
    assert summary["counts"]["solved"] == 2
    assert summary["verdicts"]["passed"] > 0
    record = scores[0][0].record(0)
    assert record["solves"] is True and record["tiers"]["edge"] is True
