"""Every stage command, run as a Job runs it: its small JSON result lands in $TAROT_RESULT_FILE in the
contract's shape (docs/architecture.md, "Stage results"), validated by the planner's own models."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pipeline_helpers import run_tarot, tarot_command, tarot_env

from tarot_jobs.lifecycle.results import DataResult, EvaluateResult, ProbeResult, TrainResult
from tarot_jobs.problems.bundled import load_bundled

pytestmark = pytest.mark.slow

SPEC = """
model: {name: tiny, dtype: float32}
dataset: {source: bundled, check: false}
probe: {problems: 2, samples: 1, maxNewTokens: 16}
curriculum: {policy: static}
training: {maxSteps: 1, numGenerations: 2, perDeviceTrainBatchSize: 2, maxCompletionLength: 16,
           saveSteps: 1, loggingSteps: 1}
evaluation: {problems: 2, samples: 1, maxNewTokens: 16, baseline: false}
sandbox: {workers: 1}
"""


def _stage(tmp_path: Path, name: str, *args: str | Path) -> dict[str, object]:
    result_file = tmp_path / f"{name}.result"
    done = subprocess.run(
        tarot_command(*args),
        capture_output=True,
        text=True,
        timeout=600,
        env={**tarot_env(), "TAROT_RESULT_FILE": str(result_file)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = result_file.read_text()
    assert len(text.encode()) < 4096
    return dict(json.loads(text))


def test_each_stage_writes_its_result(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    data, probe, train, evaluation = (tmp_path / d for d in ("data", "probe", "train", "eval"))
    common = ("--data", str(data))

    data_result = DataResult.model_validate(_stage(tmp_path, "data", "data", "prepare", spec, "--out", data))
    assert (data_result.train, data_result.heldout) == (
        len(load_bundled("train")),
        len(load_bundled("heldout")),
    )

    probe_result = _stage(tmp_path, "probe", "probe", spec, "--out", probe, *common)
    capability = json.loads((probe / "capability.json").read_text())
    assert ProbeResult.model_validate(probe_result).score == capability["score"]
    assert set(probe_result) == {"score", "passAtOne", "sandbox"}
    # Each stage says which sandbox scored its programs and how many tests: here the executor in-process.
    assert probe_result["sandbox"] == {"backend": "in-process", "scoredTests": _verdicts(probe)}

    assert run_tarot("select", spec, "--out", train).returncode == 0
    train_result = TrainResult.model_validate(
        _stage(tmp_path, "train", "train", spec, "--phase", "0", "--out", train, *common)
    )
    assert (train_result.phase, train_result.steps, train_result.completed_steps) == (0, 1, 1)
    assert train_result.checkpoint is not None and Path(train_result.checkpoint).is_dir()

    final = str(train / "phase-0" / "final")
    evaluate_result = _stage(
        tmp_path, "eval", "evaluate", spec, "--out", evaluation, "--model", final, *common
    )
    parsed = EvaluateResult.model_validate(evaluate_result)
    assert parsed.failed_executions == 0 and parsed.pass_at_one.overall is not None
    assert parsed.sandbox is not None and parsed.sandbox.backend == "in-process"
    assert parsed.sandbox.scored_tests == _verdicts(evaluation)
    assert train_result.sandbox is not None and train_result.sandbox.backend == "in-process"


def _verdicts(out: Path) -> int:
    """The tests a stage's samples.jsonl holds verdicts of (a completion without code runs none)."""
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return sum(len(sample["verdicts"]) for sample in samples)
