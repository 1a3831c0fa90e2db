"""`tarot run` with LoRA: phases save adapters, phase 1 continues phase 0's, evaluation merges it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import SHARED_MODEL_CACHE, run_tarot

pytestmark = pytest.mark.slow

SPEC = """
model: {name: tiny, lora: {enabled: true, r: 4, alpha: 8, targetModules: [q_proj, v_proj]}}
dataset: {source: bundled}
curriculum:
  policy: custom
  phases: [{start: 0, end: 0.5, tiers: [basic]}, {start: 0.5, end: 1, tiers: [basic, edge]}]
reward: {formatWeight: 0.1}
# Completions long enough for the tiny model to pass a test now and then: a group whose rewards differ
# moves the adapter (the weight oracle below requires phase 1 to have moved it).
training: {maxSteps: 4, learningRate: 1.0e-3, beta: 0.02, numGenerations: 4, perDeviceTrainBatchSize: 8,
           maxCompletionLength: 96, temperature: 0.6, saveSteps: 1}
probe: {problems: 2, samples: 2, maxNewTokens: 48}
evaluation: {problems: 2, maxNewTokens: 48, baseline: false, extraFiles: [EXTRA]}
sandbox: {workers: 2}
"""


def test_lora_phases_chain_adapters(tmp_path: Path) -> None:
    spec = tmp_path / "lora.yaml"
    # A HumanEval-shape file, evaluated beside the held-out problems.
    extra = tmp_path / "humaneval.jsonl"
    records = [
        {
            "task_id": f"demo/{i}",
            "prompt": f'def add{i}(a, b):\n    """Return a + b + {i}."""\n',
            "entry_point": f"add{i}",
            "canonical_solution": f"    return a + b + {i}\n",
            "test": f"def check(f):\n    assert f(1, 2) == {3 + i}\n",
        }
        for i in range(2)
    ]
    extra.write_text("".join(json.dumps(r) + "\n" for r in records))
    spec.write_text(SPEC.replace("EXTRA", str(extra)))
    workdir = tmp_path / "run"
    result = run_tarot("run", spec, "--workdir", workdir, "--model-cache", SHARED_MODEL_CACHE, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    for phase in (0, 1):
        final = workdir / "train" / f"phase-{phase}" / "final"
        assert (final / "adapter_config.json").is_file()
        assert not (final / "model.safetensors").exists()  # an adapter, not full weights
        summary = json.loads((workdir / "train" / f"phase-{phase}" / "phase.json").read_text())
        assert summary["weights_kind"] == "adapter" and summary["global_step"] == 2 * (phase + 1)
    _phase_one_continues_phase_zero(workdir / "train")
    base = json.loads((workdir / "train" / "phase-1" / "final" / "adapter_config.json").read_text())
    # The tiny base, not phase 0's directory.
    assert Path(base["base_model_name_or_path"]).parent == SHARED_MODEL_CACHE
    report = json.loads((workdir / "report.json").read_text())
    assert report["evaluation"]["before"] is None
    extra_result = report["evaluation_extra"]["after"][str(extra)]
    assert extra_result["counts"]["problems"] == 2 and extra_result["counts"]["completions"] == 2
    assert extra_result["pass@1"]["overall"] is not None
    assert set(report["evaluation"]["after"]) == {"basic", "intermediate", "complex", "edge", "overall"}


def _adapter(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter_model.safetensors"))


def _phase_one_continues_phase_zero(train: Path) -> None:
    """Weight-change oracle: phase 1 resumed exactly the adapter (and Adam state) phase 0 ended with,
    and trained it further.

    Whether phase 0's own steps moved the adapter depends on the tiny model earning some reward in
    them; that the resume reproduces an uninterrupted LoRA run exactly, with a phase 0 that does
    move, is tests/unit/pipeline/test_training_trajectory.py's job.
    """
    import torch

    phase0_final = _adapter(train / "phase-0" / "final")
    summary = json.loads((train / "phase-1" / "phase.json").read_text())
    assert summary["resumed_from_step"] == 2
    assert Path(summary["resumed_from"]) == train / "phase-0" / "checkpoint-2"
    resumed = _adapter(Path(summary["resumed_from"]))
    assert resumed.keys() == phase0_final.keys()
    for name, tensor in phase0_final.items():
        assert torch.equal(resumed[name], tensor), f"{name}: phase 1 did not start from phase 0's adapter"
    phase1_final = _adapter(train / "phase-1" / "final")
    assert any(not torch.equal(phase1_final[name], phase0_final[name]) for name in phase0_final)
    # Adam's state went on counting from phase 0's two steps instead of starting again.
    optimizer = torch.load(train / "phase-1" / "checkpoint-4" / "optimizer.pt", weights_only=False)
    assert {int(state["step"]) for state in optimizer["state"].values()} == {4}
