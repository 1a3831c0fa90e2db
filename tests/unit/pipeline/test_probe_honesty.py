"""The probe never reads a sandbox failure as a wrong answer: retried, then a loud failure.

The sandbox here is the real local executor behind a wrapper that refuses
its first calls, as a restarting sandbox service would (fault injection at
the sandbox boundary; every answer that does come back is the executor's).
"""

from __future__ import annotations

from typing import Any

import pytest

from tarot_jobs.pipeline.model.prompts import reference_answer
from tarot_jobs.pipeline.scoring import score_samples, summarize
from tarot_jobs.pipeline.stages.probe import require_verdicts
from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import SandboxUnavailable


class RefusingSandbox:
    """The real executor, except that its first `refusals` batches raise SandboxUnavailable."""

    def __init__(self, inner: Any, refusals: int) -> None:
        self.inner, self.refusals, self.calls = inner, refusals, 0

    def run_batch(self, requests: Any) -> Any:
        self.calls += 1
        if self.calls <= self.refusals:
            raise SandboxUnavailable(f"refused call {self.calls}")
        return self.inner.run_batch(requests)


def _scores(refusals: int) -> Any:
    problems = load_bundled("heldout")[:2]
    completions = [[reference_answer(p)] * 2 for p in problems]  # gold programs: every one solves
    with LocalSandbox(1) as inner:
        return score_samples(
            problems, completions, RefusingSandbox(inner, refusals), time_limit_s=5, memory_limit_mb=256
        )


def test_a_passing_sandbox_failure_is_retried_and_measured() -> None:
    scores = _scores(refusals=1)
    require_verdicts(scores)
    assert summarize(scores)["pass@1"]["overall"] == 1.0


def test_a_lasting_sandbox_failure_fails_the_probe_instead_of_scoring_zero() -> None:
    scores = _scores(refusals=100)
    assert summarize(scores)["pass@1"]["overall"] == 0.0  # what the probe used to report as capability
    with pytest.raises(SandboxUnavailable, match="failed on 4 of 4 completions even after retrying"):
        require_verdicts(scores)
