"""A phase trained by two processes is one training, not two (issue 17 items 1 and 2, locally).

`tarot run` launches a phase whose spec asks for more than one process (`resources.processesPerNode`)
as that many `tarot train` processes under torchrun (gloo on CPU). The same run is made twice, with
the same seed and the same global batch (8 completions per step): by one process with a per-device
batch of 8, and by two processes with a per-device batch of 4. The two-process run must:

- record its world size (2) in every phase's result, the run's status and the report;
- end each phase with identical weights in both processes (the SHA-256 each rank computed);
- write each step, completion and checkpoint once (the main process), with both processes'
  completions pooled into the step's record;
- resume phase 1 from phase 0's two-process boundary checkpoint;
- train on exactly the same prompts, step by step, as the one-process run (the sampler draws the
  global batch from the seed; each process takes its share);
- match the one-process run's reward, KL and loss within sampling noise
  (pipeline_helpers.agree_within_sampling_noise says how much that proves, and how little).

The cluster twin of this test (two pods of an Indexed Job) is tests/e2e/test_cluster_multinode.py.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_helpers import SHARED_MODEL_CACHE, agree_within_sampling_noise, prompts_by_step, run_tarot

from tarot_jobs.pipeline.training.steplog import COMPLETIONS_FILE, STEPS_FILE, read_jsonl

pytestmark = pytest.mark.slow

STEPS = 12  # phases of 4 and 8 steps
GLOBAL_BATCH = 8  # completions per step: 2 prompts x 4 generations


def _spec(processes: int) -> dict[str, Any]:
    return {
        "apiVersion": "tarot.dev/v1alpha1",
        "kind": "TarotRun",
        "metadata": {"name": f"mp-{processes}"},
        "spec": {
            "model": {"name": "tiny", "dtype": "float32"},
            "curriculum": {
                "policy": "custom",
                "phases": [
                    {"start": 0.0, "end": 1 / 3, "tiers": ["basic"]},
                    {"start": 1 / 3, "end": 1.0, "tiers": ["basic", "intermediate", "complex", "edge"]},
                ],
            },
            "reward": {"normalize": True, "formatWeight": 0.1},
            "training": {
                "maxSteps": STEPS,
                "learningRate": 3.0e-3,
                "beta": 0.05,
                "numGenerations": 4,
                "perDeviceTrainBatchSize": GLOBAL_BATCH // processes,
                "maxPromptLength": 256,
                "maxCompletionLength": 64,
                "temperature": 0.8,
                "saveSteps": 2,
                "loggingSteps": 1,
            },
            "sandbox": {"workers": 1, "timeLimitSeconds": 2},
            "evaluation": {"problems": 2, "maxNewTokens": 32, "baseline": False},
            "resources": {"processesPerNode": processes},
        },
    }


def _run(root: Path, processes: int) -> Path:
    spec_file = root / f"spec-{processes}.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(processes)))
    workdir = root / f"run-{processes}"
    result = run_tarot("run", spec_file, "--workdir", workdir, "--model-cache", SHARED_MODEL_CACHE)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("multiprocess")
    return {processes: _run(root, processes) for processes in (1, 2)}


def _phase(workdir: Path, index: int) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((workdir / "train" / f"phase-{index}" / "phase.json").read_text())
    return summary


def _steps(workdir: Path) -> list[dict[str, Any]]:
    return [s for i in (0, 1) for s in read_jsonl(workdir / "train" / f"phase-{i}" / STEPS_FILE)]


def test_the_world_size_is_recorded_everywhere(runs: dict[int, Path]) -> None:
    for processes, workdir in runs.items():
        status = json.loads((workdir / "status.json").read_text())
        assert [p["worldSize"] for p in status["curriculum"]["phases"]] == [processes, processes]
        assert [_phase(workdir, i)["world_size"] for i in (0, 1)] == [processes, processes]
        report = json.loads((workdir / "report.json").read_text())
        assert [p["world_size"] for p in report["phases"]] == [processes, processes]


def test_both_processes_end_every_phase_with_the_same_weights(runs: dict[int, Path]) -> None:
    for index in (0, 1):
        digests = _phase(runs[2], index)["rank_weights_sha256"]
        assert len(digests) == 2 and digests[0] == digests[1], digests
    # ... and training changed them: phase 1 did not just keep phase 0's weights.
    assert _phase(runs[2], 0)["rank_weights_sha256"][0] != _phase(runs[2], 1)["rank_weights_sha256"][0]


def test_steps_completions_and_checkpoints_are_written_once(runs: dict[int, Path]) -> None:
    workdir = runs[2]
    steps = _steps(workdir)
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
    for index in (0, 1):
        phase_dir = workdir / "train" / f"phase-{index}"
        per_step = Counter(c["step"] for c in read_jsonl(phase_dir / COMPLETIONS_FILE))
        # Both processes' completions, pooled into the step's record by the main process, once.
        assert set(per_step.values()) == {GLOBAL_BATCH}, per_step
        checkpoints = sorted(p.name for p in phase_dir.iterdir() if p.name.startswith("checkpoint-"))
        boundary = _phase(workdir, index)["global_step"]
        assert f"checkpoint-{boundary}" in checkpoints
        assert not [p for p in phase_dir.iterdir() if p.name.startswith(".staging-")]
        # One RNG state per process in a checkpoint: both processes resume their own stream.
        rng = sorted(p.name for p in (phase_dir / f"checkpoint-{boundary}").glob("rng_state*"))
        assert rng == ["rng_state_0.pth", "rng_state_1.pth"]
    # Every test the two processes scored is counted once, in the phase's sandbox usage.
    for index in (0, 1):
        verdicts = sum(sum(s["sandbox_verdicts"].values()) for s in steps if s["phase"] == index)
        assert _phase(workdir, index)["sandbox"]["scoredTests"] >= verdicts > 0


def test_phase_one_resumes_the_two_process_checkpoint(runs: dict[int, Path]) -> None:
    first, second = _phase(runs[2], 0), _phase(runs[2], 1)
    assert second["resumed_from_step"] == first["global_step"] == STEPS // 3
    assert second["resumed_from"].endswith(f"phase-0/checkpoint-{first['global_step']}")


def test_both_runs_train_on_the_same_prompts_step_by_step(runs: dict[int, Path]) -> None:
    one, two = (prompts_by_step(runs[n] / "train", phases=2) for n in (1, 2))
    assert sorted(one) == list(range(1, STEPS + 1))
    assert one == two


def test_reward_kl_and_loss_match_one_process_within_sampling_noise(runs: dict[int, Path]) -> None:
    one, two = _steps(runs[1]), _steps(runs[2])
    for key in ("reward", "kl", "loss"):
        agree_within_sampling_noise([s[key] for s in one], [s[key] for s in two], key)
    # The first step starts from the same weights in both runs: no divergence from the reference yet.
    assert one[0]["kl"] == two[0]["kl"] == 0.0


def test_a_phase_launched_with_the_wrong_number_of_processes_is_refused(
    runs: dict[int, Path], tmp_path: Path
) -> None:
    """`tarot train` of the two-process spec, started as one process: the generation batch the spec
    was validated for does not hold, so it stops before training, naming the field."""
    workdir = runs[2]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(2)))
    result = run_tarot(
        *("train", spec_file, "--phase", "0", "--out", tmp_path / "train", "--data", workdir / "data"),
        *("--policy", workdir / "policy.json", "--model-cache", SHARED_MODEL_CACHE),
    )
    assert result.returncode != 0
    assert "resources: the spec trains with 2 processes" in result.stderr
    assert not (tmp_path / "train" / "phase-0" / "phase.json").exists()
