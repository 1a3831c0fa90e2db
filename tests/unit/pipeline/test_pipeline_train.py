"""`tarot train` on the tiny model, as real processes: outputs, rewards reaching trl, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from pipeline_helpers import run_tarot, tarot_command, tarot_env

from tarot_jobs.atomic import COMPLETE_MARKER
from tarot_jobs.pipeline.training.steplog import read_jsonl

pytestmark = pytest.mark.slow

FORMAT_WEIGHT = 0.1
# Two phases (basic only, then all tiers), 4 + 4 steps, a checkpoint after every step.
SPEC = f"""
model: {{name: tiny}}
dataset: {{source: bundled}}
curriculum:
  policy: custom
  phases:
    - {{start: 0.0, end: 0.5, tiers: [basic]}}
    - {{start: 0.5, end: 1.0, tiers: [basic, intermediate, complex, edge]}}
reward: {{normalize: true, formatWeight: {FORMAT_WEIGHT}}}
training:
  maxSteps: 8
  learningRate: 1.0e-4
  beta: 0.02
  numGenerations: 4
  perDeviceTrainBatchSize: 8
  maxPromptLength: 512
  maxCompletionLength: 96
  temperature: 0.6
  saveSteps: 1
  loggingSteps: 1
sandbox: {{workers: 2, timeLimitSeconds: 2, memoryLimitMb: 256}}
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A spec, its checked problems (data stage) and its policy.json, made by the real commands."""
    root = tmp_path_factory.mktemp("train")
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    from tarot_jobs.pipeline.stages.data import prepare_data, write_data
    from tarot_jobs.sandbox.local import LocalSandbox
    from tarot_jobs.spec.model import load_spec

    with LocalSandbox(2) as sandbox:
        write_data(prepare_data(load_spec(spec), sandbox), root / "data")
    selected = run_tarot("select", spec, "--out", root)
    assert selected.returncode == 0, selected.stderr
    return {"root": root, "spec": spec, "data": root / "data", "policy": root / "policy.json"}


def _train(prepared: dict[str, Path], out: Path, phase: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_tarot(
        "train", prepared["spec"], "--phase", str(phase), "--out", out,
        "--policy", prepared["policy"], "--data", prepared["data"], *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(prepared: dict[str, Path]) -> Path:
    out = prepared["root"] / "uninterrupted"
    for phase in (0, 1):
        result = _train(prepared, out, phase)
        assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_phase_outputs_are_complete(uninterrupted: Path) -> None:
    for phase in (0, 1):
        run_dir = uninterrupted / f"phase-{phase}"
        summary = json.loads((run_dir / "phase.json").read_text())
        # Steps are numbered run-wide: phase 1 trains steps 5..8 and checkpoints as checkpoint-5..8.
        assert summary["global_step"] == 4 * (phase + 1) and summary["steps"] == 4
        assert (run_dir / "final" / COMPLETE_MARKER).is_file()
        assert (run_dir / "final" / "tokenizer_config.json").is_file()
        checkpoints = sorted(p.name for p in run_dir.glob("checkpoint-*"))
        assert checkpoints == [f"checkpoint-{4 * phase + 3}", f"checkpoint-{4 * phase + 4}"]  # newest two
        for checkpoint in checkpoints:
            for name in (
                COMPLETE_MARKER,
                "trainer_state.json",
                "optimizer.pt",
                "scheduler.pt",
                "rng_state.pth",
            ):
                assert (run_dir / checkpoint / name).is_file(), f"{checkpoint}/{name}"
        assert not list(run_dir.glob(".staging-*"))
        steps = read_jsonl(run_dir / "steps.jsonl")
        assert [s["step"] for s in steps] == [phase * 4 + i for i in (1, 2, 3, 4)]
        assert [s["phase_step"] for s in steps] == [1, 2, 3, 4]
        assert all(s["phase"] == phase and s["total_steps"] == 8 for s in steps)
        for step in steps:
            for key in ("reward", "tiered_reward", "format_reward", "kl", "loss", "completion_length"):
                assert step[key] is not None, key
            assert step["tokens_per_second"] > 0
            assert sum(step["sandbox_verdicts"].values()) > 0
            assert step["seconds"]["generation"] > 0 and step["seconds"]["reward"] > 0
    later = read_jsonl(uninterrupted / "phase-1" / "steps.jsonl")
    assert set(later[0]["tier_pass_rate"]) == {"basic", "intermediate", "complex", "edge"}


def test_step_rewards_match_tarot_score(prepared: dict[str, Path], uninterrupted: Path) -> None:
    """The rewards trl logged per step are what `tarot score` gives the same completions.

    Phase 1 of the spec's policy allows every tier with uniform weights, exactly
    the portfolio's `static`, so `tarot score --policy static` must agree.
    """
    run_dir = uninterrupted / "phase-1"
    completions = read_jsonl(run_dir / "completions.jsonl")
    steps = {s["step"]: s for s in read_jsonl(run_dir / "steps.jsonl")}
    assert len(completions) == 4 * 8  # 4 steps x 8 completions
    to_score = prepared["root"] / "to-score.jsonl"
    to_score.write_text(
        "".join(
            json.dumps({"problem_id": c["problem_id"], "completion": c["completion"]}) + "\n"
            for c in completions
        )
    )
    result = run_tarot("score", prepared["data"] / "train.jsonl", to_score, "--json", "--policy", "static")
    assert result.returncode == 0, result.stderr
    scored = [json.loads(line)["reward"] for line in result.stdout.splitlines() if line.strip()]
    assert scored == pytest.approx([c["reward"] for c in completions], abs=1e-6)
    assert any(reward > 0 for reward in scored), "the warmed-up tiny model passes some tests"

    by_step: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for item, reward in zip(completions, scored, strict=True):
        by_step[int(item["step"])].append((reward, float(item["format_reward"])))
    assert sorted(by_step) == [5, 6, 7, 8]
    for step, pairs in by_step.items():
        tiered = sum(r for r, _ in pairs) / len(pairs)
        total = sum(r + FORMAT_WEIGHT * f for r, f in pairs) / len(pairs)
        assert steps[step]["tiered_reward"] == pytest.approx(tiered, abs=1e-6)
        assert steps[step]["reward"] == pytest.approx(total, abs=1e-6)


def test_phase_one_needs_phase_zero(prepared: dict[str, Path], tmp_path: Path) -> None:
    result = _train(prepared, tmp_path / "fresh", 1)
    assert result.returncode == 2
    assert "phase 0 has not finished" in result.stderr


def test_existing_checkpoints_need_resume(prepared: dict[str, Path], uninterrupted: Path) -> None:
    result = _train(prepared, uninterrupted, 0)
    assert result.returncode == 2
    assert "--resume" in result.stderr


def test_killed_training_resumes_to_the_same_step_count(
    prepared: dict[str, Path], uninterrupted: Path
) -> None:
    out = prepared["root"] / "killed"
    args = [
        "train", prepared["spec"], "--phase", "0", "--out", out,
        "--policy", prepared["policy"], "--data", prepared["data"],
    ]  # fmt: skip
    process = subprocess.Popen(tarot_command(*args), env=tarot_env(), start_new_session=True)
    run_dir = out / "phase-0"
    deadline = time.monotonic() + 400
    try:
        while not (run_dir / "checkpoint-1" / COMPLETE_MARKER).is_file():
            assert process.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)  # the trainer and its sandbox helpers, mid-phase
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "phase.json").exists()
    assert not (run_dir / "final").exists()

    resumed = run_tarot(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run_dir / "phase.json").read_text())
    reference = json.loads((uninterrupted / "phase-0" / "phase.json").read_text())
    assert summary["resumed_from_step"] >= 1
    assert summary["global_step"] == reference["global_step"] == 4
    state = json.loads((run_dir / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    steps = [s["step"] for s in read_jsonl(run_dir / "steps.jsonl")]
    assert steps == [1, 2, 3, 4]  # lines past the checkpoint were dropped, none repeated


def test_killed_after_the_boundary_checkpoint_trains_no_further(
    prepared: dict[str, Path], uninterrupted: Path, tmp_path: Path
) -> None:
    """A Job killed between its boundary checkpoint and final/ only writes final/ when resumed."""
    import shutil

    out = tmp_path / "after-boundary"
    shutil.copytree(uninterrupted / "phase-0", out / "phase-0")
    shutil.rmtree(out / "phase-0" / "final")
    (out / "phase-0" / "phase.json").unlink()
    resumed = _train(prepared, out, 0, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "phase-0" / "phase.json").read_text())
    assert summary["global_step"] == 4 and summary["resumed_from_step"] == 4
    assert sorted(p.name for p in (out / "phase-0").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert [s["step"] for s in read_jsonl(out / "phase-0" / "steps.jsonl")] == [1, 2, 3, 4]
    final = out / "phase-0" / "final"
    assert (final / COMPLETE_MARKER).is_file() and (final / "model.safetensors").is_file()
    assert not (final / "optimizer.pt").exists()
    from safetensors.torch import load_file

    written = load_file(str(final / "model.safetensors"))
    reference = load_file(str(uninterrupted / "phase-0" / "final" / "model.safetensors"))
    assert written.keys() == reference.keys()
    assert all(bool((written[name] == reference[name]).all()) for name in reference)
