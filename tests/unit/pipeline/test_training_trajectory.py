"""Cutting a run into phase Jobs does not change its numbers (issue 9 item 1, issue 19 item 4).

The same tiny run is trained with the same seed: as three phase Jobs (each a
fresh trainer; phase i > 0 resumes from phase i-1's boundary checkpoint), once
in this process and once as three separate `tarot train --phase I` processes
(as a cluster's phase Jobs run it), and as one uninterrupted trainer whose
reward switches phase by step. Step logs (reward, KL, loss) and the final
weights must agree. An epoch is 3 steps (5 problems, 2 prompts per step: its
last batch is completed by the sampler); the first boundary falls inside an
epoch, the second on an epoch's end, so both resume paths of transformers
(with and without skipping batches) are crossed, the padded batch included.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_helpers import SHARED_MODEL_CACHE, run_tarot

from tarot_jobs.pipeline.model.loading import ResolvedModel
from tarot_jobs.pipeline.selection import Selection
from tarot_jobs.pipeline.stages.data import RunData, write_data
from tarot_jobs.pipeline.stages.select import write_policy
from tarot_jobs.pipeline.stages.train import PhaseRequest, train_phase
from tarot_jobs.pipeline.training.phases import plan_phases
from tarot_jobs.pipeline.training.steplog import COMPLETIONS_FILE, STEPS_FILE, read_jsonl
from tarot_jobs.pipeline.workspace import final_weights, phase_dir
from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.spec.model import TarotRunSpec

pytestmark = pytest.mark.slow

PROBLEMS = 5  # two prompts per step: an epoch is three steps, its last batch completed by the sampler
STEPS_PER_EPOCH = 3
SPEC = {
    # The tiny model warmed up on the bundled training split: the test builds it from load_bundled("train")
    # (the same cache key), a `tarot train` process from this warm-up source.
    "model": {"name": "tiny", "dtype": "float32", "tiny": {"warmupSource": "bundled:train"}},
    "curriculum": {
        "policy": "custom",
        "phases": [
            {"start": 0.0, "end": 0.25, "tiers": ["basic"]},
            {"start": 0.25, "end": 0.5, "tiers": ["basic", "intermediate"]},
            {"start": 0.5, "end": 1.0, "tiers": ["basic", "intermediate", "complex", "edge"]},
        ],
    },
    "reward": {"normalize": True, "formatWeight": 0.1},
    "training": {
        "maxSteps": 6,  # phases of 2, 1 and 3 steps: boundaries after step 2 (inside epoch 0) and 3 (its end)
        "learningRate": 3.0e-3,
        "beta": 0.05,
        "numGenerations": 4,
        "perDeviceTrainBatchSize": 8,
        "maxPromptLength": 256,
        "maxCompletionLength": 64,
        "temperature": 0.8,
        "saveSteps": 50,
        "lrSchedulerType": "linear",  # one schedule over the run: a restart per phase would show
    },
    "sandbox": {"workers": 1, "timeLimitSeconds": 2},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tarot_jobs.pipeline.model.tiny import tiny_model_dir

    root = tmp_path_factory.mktemp("trajectory")
    spec = TarotRunSpec.model_validate(SPEC)
    # The tiny model warmed up on the bundled training split (shared with the other pipeline tests):
    # it half-remembers these programs, so rewards vary and every step has a gradient.
    model_dir = tiny_model_dir(SHARED_MODEL_CACHE, load_bundled("train"))
    train = load_bundled("train")[:PROBLEMS]
    selection = Selection(policy=spec.curriculum.candidate_policies()[0], rule="custom", reason="test")
    data = RunData(train=train, heldout=[], summary={})
    return {"root": root, "spec": spec, "data": data, "selection": selection, "base": str(model_dir)}


def _request(
    setup: dict[str, Any], out: Path, phase: int, through: int | None = None, spec: TarotRunSpec | None = None
) -> PhaseRequest:
    return PhaseRequest(
        spec or setup["spec"],
        setup["selection"],
        setup["data"],
        ResolvedModel(setup["base"], True),
        out,
        phase,
        through_phase=through,
    )


def _train_both_ways(setup: dict[str, Any], name: str, spec: TarotRunSpec) -> dict[str, Path]:
    cut, whole = setup["root"] / f"{name}-cut", setup["root"] / f"{name}-whole"
    with LocalSandbox(1) as sandbox:
        for phase in range(3):
            train_phase(_request(setup, cut, phase, spec=spec), sandbox)
        train_phase(_request(setup, whole, 0, through=2, spec=spec), sandbox)
    return {"cut": cut, "whole": whole}


@pytest.fixture(scope="module")
def both_ways(setup: dict[str, Any]) -> dict[str, Path]:
    return _train_both_ways(setup, "full", setup["spec"])


def _weights(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    adapter = directory / "adapter_model.safetensors"
    return load_file(str(adapter if adapter.is_file() else directory / "model.safetensors"))


def _assert_same_trajectory(cut_dir: Path, whole_dir: Path, base_dir: Path) -> None:
    """The phases in `cut_dir` (phase-0..2) reproduce the uninterrupted run in `whole_dir` (phase-0):
    step records within float rounding (rel 1e-5), identical completions, final weights within rtol 1e-5."""
    cut_steps = [r for i in range(3) for r in read_jsonl(phase_dir(cut_dir, i) / STEPS_FILE)]
    whole_steps = read_jsonl(phase_dir(whole_dir, 0) / STEPS_FILE)
    assert [r["step"] for r in cut_steps] == [r["step"] for r in whole_steps] == [1, 2, 3, 4, 5, 6]
    assert [r["phase"] for r in cut_steps] == [r["phase"] for r in whole_steps] == [0, 0, 1, 2, 2, 2]
    for cut, whole in zip(cut_steps, whole_steps, strict=True):
        for key in ("reward", "tiered_reward", "format_reward", "kl", "loss", "learning_rate"):
            assert cut[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-7), (cut["step"], key)
        assert cut["tier_pass_rate"] == pytest.approx(whole["tier_pass_rate"], abs=1e-7)
    # The linear schedule decays over the whole run, through the boundaries (no restart per phase).
    rates = [r["learning_rate"] for r in cut_steps]
    assert all(a > b for a, b in itertools.pairwise(rates))
    # KL to the base model continues across a boundary instead of restarting from 0.
    for first_of_phase in (cut_steps[2], cut_steps[3]):
        assert first_of_phase["kl"] > 0
    # Identical completions, so identical rewards for the same reasons.
    cut_done = [c for i in range(3) for c in read_jsonl(phase_dir(cut_dir, i) / COMPLETIONS_FILE)]
    whole_done = read_jsonl(phase_dir(whole_dir, 0) / COMPLETIONS_FILE)
    assert [c["problem_id"] for c in cut_done] == [c["problem_id"] for c in whole_done]
    assert [c["completion"] for c in cut_done] == [c["completion"] for c in whole_done]

    import torch

    cut_final, whole_final = _weights(final_weights(cut_dir, 2)), _weights(final_weights(whole_dir, 0))
    base = _weights(base_dir)
    assert cut_final.keys() == whole_final.keys()
    for name, tensor in cut_final.items():
        torch.testing.assert_close(tensor, whole_final[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(base[name], cut_final[name]) for name in base), "training changed nothing"


def test_phases_reproduce_the_uninterrupted_trajectory(
    setup: dict[str, Any], both_ways: dict[str, Path]
) -> None:
    _assert_same_trajectory(both_ways["cut"], both_ways["whole"], Path(setup["base"]))


@pytest.fixture(scope="module")
def as_processes(setup: dict[str, Any], both_ways: dict[str, Path]) -> Path:
    """The same run as three `tarot train SPEC --phase I` processes, one after the other, as a cluster's
    phase Jobs run it: each a fresh interpreter that reads the spec, the data stage's problems and
    policy.json from files and builds (here: finds in the shared cache) the tiny model itself."""
    root = setup["root"] / "processes"
    data_dir = root / "data"
    # A data stage's output: the run's training problems (and a held-out one, which training never reads).
    write_data(RunData(train=setup["data"].train, heldout=load_bundled("heldout")[:1], summary={}), data_dir)
    policy = write_policy(setup["selection"], root)
    spec_file = root / "spec.yaml"
    manifest = {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": "trajectory"}}
    spec_file.write_text(yaml.safe_dump({**manifest, "spec": SPEC}))
    out = root / "train"
    for phase in range(3):
        result = run_tarot(
            "train", spec_file, "--phase", str(phase), "--out", out, "--policy", policy,
            "--data", data_dir, "--model-cache", SHARED_MODEL_CACHE,
        )  # fmt: skip
        assert result.returncode == 0, f"phase {phase}: {result.stderr[-4000:]}"
    return out


def test_phase_processes_reproduce_the_uninterrupted_trajectory(
    setup: dict[str, Any], both_ways: dict[str, Path], as_processes: Path
) -> None:
    """Separate processes carry nothing over but the files on the volume: the boundary checkpoint
    (weights, Adam's moments, scheduler, RNG state, global step) must be all a phase needs. Same rules
    as in one process: step records within rel 1e-5, identical completions, final weights within rtol 1e-5."""
    plans = plan_phases(setup["spec"], setup["selection"].policy, PROBLEMS)
    for plan in plans:
        summary = json.loads((phase_dir(as_processes, plan.index) / "phase.json").read_text())
        assert summary["global_step"] == plan.end_step
        assert summary["resumed_from_step"] == (plan.step_offset or None)  # from the previous process's files
        assert summary["world_size"] == 1
    _assert_same_trajectory(as_processes, both_ways["whole"], Path(setup["base"]))


def test_every_problem_is_drawn_once_per_epoch(setup: dict[str, Any], both_ways: dict[str, Path]) -> None:
    """From the completions the phases logged: each epoch (3 steps of 2 prompts) draws all 5 problems,
    one of them twice to fill its last step (trl's sampler drew 4 of them in 2 steps)."""
    done = [c for i in range(3) for c in read_jsonl(phase_dir(both_ways["cut"], i) / COMPLETIONS_FILE)]
    ids = {p.id for p in setup["data"].train}
    for epoch in range(2):  # steps 3e+1 .. 3e+3 make epoch e
        drawn = [c["problem_id"] for c in done if (c["step"] - 1) // STEPS_PER_EPOCH == epoch]
        assert sorted(set(drawn)) == sorted(ids), epoch
        assert len(drawn) == STEPS_PER_EPOCH * 2 * 4  # 3 steps of 2 prompts, 4 completions each


def test_phases_checkpoint_and_log_run_wide_steps(setup: dict[str, Any], both_ways: dict[str, Path]) -> None:
    plans = plan_phases(setup["spec"], setup["selection"].policy, PROBLEMS)
    assert [(p.step_offset, p.steps) for p in plans] == [(0, 2), (2, 1), (3, 3)]
    for plan in plans:
        run_dir = phase_dir(both_ways["cut"], plan.index)
        assert (run_dir / f"checkpoint-{plan.end_step}").is_dir()
        summary = json.loads((run_dir / "phase.json").read_text())
        assert summary["global_step"] == plan.end_step
        assert summary["resumed_from_step"] == (plan.step_offset or None)
        steps = read_jsonl(run_dir / STEPS_FILE)
        assert [s["phase_step"] for s in steps] == list(range(1, plan.steps + 1))
        assert all(s["total_steps"] == 6 for s in steps)


def test_lora_phases_reproduce_the_uninterrupted_trajectory(setup: dict[str, Any]) -> None:
    """With LoRA the adapter, its optimizer state and the schedule carry over the boundaries too."""
    import torch

    lora = setup["spec"].model_copy(
        update={
            "model": setup["spec"].model.model_copy(
                update={"lora": setup["spec"].model.lora.model_copy(update={"enabled": True, "r": 4})}
            )
        }
    )
    runs = _train_both_ways(setup, "lora", lora)
    cut_steps = [r for i in range(3) for r in read_jsonl(phase_dir(runs["cut"], i) / STEPS_FILE)]
    whole_steps = read_jsonl(phase_dir(runs["whole"], 0) / STEPS_FILE)
    for cut, whole in zip(cut_steps, whole_steps, strict=True):
        for key in ("reward", "kl", "loss"):
            assert cut[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-7), (cut["step"], key)
    cut_final, whole_final = (
        _weights(final_weights(runs["cut"], 2)),
        _weights(final_weights(runs["whole"], 0)),
    )
    assert cut_final.keys() == whole_final.keys() and any("lora_B" in name for name in cut_final)
    for name, tensor in cut_final.items():
        torch.testing.assert_close(tensor, whole_final[name], rtol=1e-5, atol=1e-6)
    phase0 = _weights(final_weights(runs["cut"], 0))
    # peft starts lora_B at zero: phase 0 moved it, so phase 1 did not resume a fresh adapter,
    # and phases 1-2 moved it further.
    assert any(float(t.abs().sum()) > 0 for name, t in phase0.items() if "lora_B" in name)
    assert any(not torch.equal(phase0[name], cut_final[name]) for name in phase0), "phases 1-2 trained"
