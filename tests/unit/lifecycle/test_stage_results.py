"""Each stage's small JSON result (docs/architecture.md, "Stage results"), from what the stage returns,
and the shared training progress (phase label, one advance per logged step)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pydantic import BaseModel
from rich.console import Console

from tarot_jobs.cli.output import RESULT_FILE_VARIABLE, RESULT_LIMIT_BYTES, write_result
from tarot_jobs.lifecycle.results import DataResult, data_result, evaluate_result, probe_result, train_result
from tarot_jobs.pipeline.progress import Reporter, phase_label, step_info, step_progress

PASS = {"basic": 0.5, "intermediate": 0.25, "complex": None, "edge": 0.0, "overall": 0.125}


def test_data_result_counts_what_the_check_dropped() -> None:
    summary = {
        "usable": {"train": 40, "heldout": 9},
        "check_train": {"problems": 44, "usable_problems": 40},
        "check_heldout": {"problems": 10, "usable_problems": 9},
    }
    assert data_result(summary).model_dump(by_alias=True, exclude_none=True) == {
        "train": 40,
        "heldout": 9,
        "dropped": 5,
    }
    assert data_result({"usable": {"train": 3, "heldout": 1}}).dropped == 0  # no check ran


def test_probe_result_is_score_and_pass_at_one_in_camel_case() -> None:
    result = probe_result({"score": 0.125, "pass_at_1": PASS, "counts": {}})
    assert result.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "score": 0.125,
        "passAtOne": {"basic": 0.5, "intermediate": 0.25, "edge": 0.0, "overall": 0.125},
    }


def test_train_result_counts_the_steps_of_its_phase() -> None:
    summary = {
        "index": 1,
        "tiers": ["basic", "intermediate"],
        "steps": 5,
        "step_offset": 5,
        "global_step": 10,
        "mean_reward": 0.4,
        "mean_tier_pass_rate": {"basic": 0.5, "intermediate": 0.3},
        "final": "/ws/train/phase-1/final",
    }
    assert train_result(summary).model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "phase": 1,
        "steps": 5,
        "completedSteps": 5,
        "meanReward": 0.4,
        "rewardPerTier": {"basic": 0.5, "intermediate": 0.3},
        "checkpoint": "/ws/train/phase-1/final",
    }
    assert train_result({**summary, "global_step": 7}).completed_steps == 2
    # A phase trained by several processes says how many (its status shows it: worldSize).
    assert train_result({**summary, "world_size": 4}).model_dump(by_alias=True)["worldSize"] == 4


def test_evaluate_result_has_pass_at_one_and_failed_executions() -> None:
    evaluation = {"heldout": {"pass@1": PASS, "counts": {"sandbox_failed": 3}}, "extra": {}}
    dumped = evaluate_result(evaluation).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["failedExecutions"] == 3 and dumped["passAtOne"]["overall"] == 0.125


def test_result_file_is_written_only_when_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "termination-log"
    monkeypatch.delenv(RESULT_FILE_VARIABLE, raising=False)
    write_result(DataResult(train=1, heldout=1))
    assert not target.exists()
    monkeypatch.setenv(RESULT_FILE_VARIABLE, str(target))
    write_result(DataResult(train=2, heldout=1))
    assert json.loads(target.read_text()) == {"train": 2, "heldout": 1, "dropped": 0}


class _Big(BaseModel):
    text: str


def test_a_result_over_the_kubelet_limit_is_refused_not_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "termination-log"
    monkeypatch.setenv(RESULT_FILE_VARIABLE, str(target))
    with pytest.raises(RuntimeError, match="bytes"):
        write_result(_Big(text="x" * RESULT_LIMIT_BYTES))
    assert not target.exists()


def test_phase_label_and_step_info() -> None:
    assert phase_label(1, 4, ["basic", "intermediate"]) == "train phase 2/4 [B+I]"
    record = {"reward": 0.5, "kl": None, "loss": 0.25, "tokens_per_second": 812.4}
    assert step_info(record) == "reward 0.500, loss 0.250, 812 tok/s"


def test_step_progress_counts_within_the_phase_and_calls_listeners() -> None:
    out = io.StringIO()
    reporter = Reporter(Console(file=out, width=200), interval_s=0.0, live=False)
    heard: list[int] = []
    with step_progress(reporter, "train phase 2/2 [B]", 3, lambda r: heard.append(r["step"])) as on_step:
        for step in (6, 7, 8):  # run-wide steps of a phase that starts after 5
            on_step({"step": step, "phase_step": step - 5, "reward": 0.1 * step})
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1].split(",")[0] for line in lines] == [
        "train phase 2/2 [B]: 1/3",
        "train phase 2/2 [B]: 2/3",
        "train phase 2/2 [B]: 3/3",
    ]
    assert heard == [6, 7, 8]
