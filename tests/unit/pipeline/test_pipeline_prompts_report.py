"""Prompt truncation, step records from trl's logs, and the report files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tarot_jobs.pipeline.model.prompts import reference_answer, user_message
from tarot_jobs.pipeline.stages.report import build_report, render_markdown, write_report
from tarot_jobs.pipeline.training.steplog import truncate_after
from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.rewards.extract import extract_code


def test_reference_answer_is_what_the_reward_extracts() -> None:
    problem = load_bundled("train")[0]
    assert extract_code(reference_answer(problem)) == problem.gold_solution.strip() + "\n"
    assert "```python" in user_message(problem)


def test_truncate_after_drops_lines_past_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3, 4, 3)))
    truncate_after(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def _inputs() -> dict[str, Any]:
    tiers = ["basic", "intermediate", "complex", "edge"]
    table = {**dict.fromkeys(tiers, 0.25), "overall": 0.1}
    return {
        "spec_file": "spec.yaml",
        "model": "tiny",
        "data_summary": {"usable": {"train": 10, "heldout": 4}},
        "capability": {
            "score": 0.1,
            "pass_at_1": table,
            "test_pass_rate": dict.fromkeys(tiers, 0.3),
            "counts": {"problems": 4, "completions": 8},
        },
        "selection": {
            "policy": {"name": "forward"},
            "reason": "capability 0.100 < threshold 0.5",
            "rule": "auto",
            "score": 0.1,
            "threshold": 0.5,
        },
        "phases": [
            {
                "index": 0,
                "tiers": ["basic"],
                "weights": {"basic": 0.25},
                "steps": 2,
                "global_step": 2,
                "mean_reward": 0.5,
            },
            {
                "index": 1,
                "tiers": tiers,
                "weights": dict.fromkeys(tiers, 0.25),
                "steps": 3,
                "global_step": 5,  # run-wide: the phase ends at step 5 of the run
                "mean_reward": None,
            },
        ],
        "before": {"heldout": {"pass@1": table}, "extra": {}},
        "after": {"heldout": {"pass@1": {**table, "basic": 0.5}}, "extra": {}},
        "stage_seconds": {"probe": 1.5, "train-0": 3.0},
    }


def test_report_has_the_promised_shape(tmp_path: Path) -> None:
    report = build_report(**_inputs())
    assert report["policy"] == {
        "name": "forward",
        "reason": "capability 0.100 < threshold 0.5",
        "rule": "auto",
        "score": 0.1,
        "threshold": 0.5,
    }
    assert [p["steps"] for p in report["phases"]] == [2, 3]
    assert report["evaluation"]["after"]["basic"] == 0.5
    assert report["evaluation"]["before"]["edge"] == 0.25
    yardstick = {"problems": 4, "pass_at_1": {"overall": 0.25}}
    steps = [
        {
            "run_step": 1,
            "reward": 0.4,
            "tier_pass_rate": {"basic": 0.5},
            "yardstick": [{**yardstick, "step": 0}, {**yardstick, "step": 1}],
        },
        {"run_step": 2, "reward": 0.6, "tier_pass_rate": {"basic": 0.7}},
        {
            "run_step": 3,
            "reward": None,
            "tier_pass_rate": {"basic": 0.1, "edge": 0.0},
            "yardstick": [{"step": 3, "problems": 4, "pass_at_1": {"overall": 0.75}}],
        },
    ]
    write_report(tmp_path, report, steps, tiny=True)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["phases"] == report["phases"]
    assert [m["step"] for m in written["yardstick"]] == [0, 1, 3]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (tmp_path / "report.md").read_text()
    assert "| basic | 25.0% | 50.0% |" in markdown
    assert "Policy **forward** (auto)" in markdown
    assert "| 1 | B+I+C+E |" in markdown
    assert "learns little" in markdown
    assert "25.0% at step 0, 75.0% at step 3" in markdown
    assert "learns little" not in render_markdown(report, tiny=False)
