"""The training stage: one curriculum phase of GRPO (`tarot train SPEC --phase I --out DIR`).

Phase I trains with the tiered reward restricted to the phase's tiers and
weights (from policy.json) plus the format reward (weight
`reward.formatWeight`), for the phase's share of the step budget
(phases.py). It starts from the base model (phase 0) or from phase I-1's
final weights, and writes into DIR/phase-I/:

- checkpoint-N/  complete checkpoints only (weights or adapter, optimizer,
  scheduler, RNG, trainer state), newest two kept;
- steps.jsonl    one record per logged step (steplog.py);
- completions.jsonl  every completion with its rewards;
- final/         the phase's final weights (or LoRA adapter) and tokenizer;
- phase.json     the phase's summary, written last: the phase is complete
  exactly when it exists.

`resume=True` continues from the newest complete checkpoint, so a killed
phase ends with the same number of optimizer steps as an uninterrupted one.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import is_complete, write_atomically, write_json_atomically
from tarot_jobs.curriculum.selection import Selection
from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.pipeline.model.loading import (
    ResolvedModel,
    is_adapter,
    load_for_training,
    load_tokenizer,
    torch_dtype,
)
from tarot_jobs.pipeline.model.prompts import render_prompt
from tarot_jobs.pipeline.model.runtime import prepare_runtime
from tarot_jobs.pipeline.stages.data import RunData
from tarot_jobs.pipeline.training.checkpoints import complete_checkpoints, latest_checkpoint, remove_leftovers
from tarot_jobs.pipeline.training.phases import PhasePlan, plan_phases
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec

PHASE_FILE = "phase.json"
FINAL_DIR = "final"


def phase_dir(out_dir: Path, index: int) -> Path:
    return out_dir / f"phase-{index}"


def final_weights(out_dir: Path, index: int) -> Path:
    return phase_dir(out_dir, index) / FINAL_DIR


def phase_complete(out_dir: Path, index: int) -> bool:
    return (phase_dir(out_dir, index) / PHASE_FILE).is_file() and is_complete(final_weights(out_dir, index))


def read_phase_summary(out_dir: Path, index: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((phase_dir(out_dir, index) / PHASE_FILE).read_text())
    return data


def check_training_options(spec: TarotRunSpec) -> None:
    """Fail before any model is loaded when the spec asks for something this machine lacks."""
    if spec.training.use_vllm:
        if importlib.util.find_spec("vllm") is None:
            raise StageError(
                "training.useVllm: vLLM is not installed; install it on a CUDA machine "
                "(pip install vllm) or set training.useVllm: false"
            )
        import torch

        if not torch.cuda.is_available():
            raise StageError("training.useVllm: vLLM generation needs a CUDA GPU and none is visible")


@dataclass(frozen=True)
class PhaseRequest:
    spec: TarotRunSpec
    selection: Selection
    data: RunData
    base: ResolvedModel
    out_dir: Path
    phase: int
    resume: bool = False
    metrics_port: int | None = None
    log_completions: bool = True


def plan_for(request: PhaseRequest) -> list[PhasePlan]:
    return plan_phases(request.spec, request.selection.policy, len(request.data.train))


def train_phase(
    request: PhaseRequest,
    sandbox: SandboxBackend,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one phase to completion (or finish a resumed one); returns phase.json's content."""
    log = say or (lambda _msg: None)
    spec, out_dir, index = request.spec, request.out_dir, request.phase
    plans = plan_for(request)
    if not 0 <= index < len(plans):
        raise StageError(
            f"--phase: policy {request.selection.policy.name} has {len(plans)} phases (0..{len(plans) - 1}), "
            f"not {index}"
        )
    plan = plans[index]
    run_dir = phase_dir(out_dir, index)
    if phase_complete(out_dir, index):
        if request.resume:
            log(f"phase {index} is already complete ({run_dir / PHASE_FILE})")
            return read_phase_summary(out_dir, index)
        raise StageError(
            f"{run_dir}: phase {index} is already complete; pass --resume to keep it or remove it"
        )
    if complete_checkpoints(run_dir) and not request.resume:
        raise StageError(f"{run_dir}: holds checkpoints of an earlier attempt; pass --resume to continue it")
    if index > 0 and not phase_complete(out_dir, index - 1):
        raise StageError(
            f"{phase_dir(out_dir, index - 1)}: phase {index - 1} has not finished; phase {index} starts from "
            f"its final weights ({final_weights(out_dir, index - 1)})"
        )
    check_training_options(spec)
    for leftover in remove_leftovers(run_dir):
        log(f"removed incomplete {leftover.name} left by an interrupted run")
    start = request.base.path if index == 0 else str(final_weights(out_dir, index - 1))
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    trainer, logger = _build_trainer(request, plan, len(plans), start, sandbox, on_step)
    checkpoint = latest_checkpoint(run_dir) if request.resume else None
    resumed_from = None
    if checkpoint is not None:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        resumed_from = int(state["global_step"])
        tokens = _last_logged_tokens(state)
        logger.resume_from(resumed_from, tokens)
        log(f"resuming phase {index} from {checkpoint.name} (step {resumed_from}/{plan.steps})")
    else:
        logger.resume_from(0, None)
    server = None
    if request.metrics_port is not None and logger.context.metrics is not None:
        server = logger.context.metrics.serve(request.metrics_port)
        log(f"metrics on http://0.0.0.0:{request.metrics_port}/metrics")
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        if server is not None:
            server.shutdown()
    global_step = int(trainer.state.global_step)
    write_atomically(
        final_weights(out_dir, index),
        lambda staged: _save_final(trainer, staged),
        {"phase": index, "global_step": global_step},
    )
    summary = _summary(request, plan, len(plans), global_step, resumed_from, time.monotonic() - started)
    write_json_atomically(run_dir / PHASE_FILE, summary)
    return summary


def _build_trainer(
    request: PhaseRequest,
    plan: PhasePlan,
    phases: int,
    start: str,
    sandbox: SandboxBackend,
    on_step: Callable[[dict[str, Any]], None] | None,
) -> tuple[Any, Any]:
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback
    from trl import GRPOConfig

    from tarot_jobs.pipeline.training.metrics import TrainMetrics
    from tarot_jobs.pipeline.training.steplog import GenerationClock, RewardMeter, StepContext, StepLogger
    from tarot_jobs.pipeline.training.trainer import TarotGRPOTrainer
    from tarot_jobs.rewards import TieredReward, format_reward

    spec, t = request.spec, request.spec.training
    tiny = request.base.is_tiny
    prepare_runtime(tiny)
    # trl's config still spells activation checkpointing the old way; the rename warning is noise here.
    warnings.filterwarnings(
        "ignore", message=".*deprecated and will be removed in v6.*", category=FutureWarning
    )
    model = load_for_training(start, spec.model, tiny=tiny)
    tokenizer = load_tokenizer(start, spec.model)
    dataset = Dataset.from_list(
        [
            {"prompt": render_prompt(tokenizer, p, t.max_prompt_length), "problem_id": p.id}
            for p in request.data.train
        ]
    )
    tiered = RewardMeter(
        TieredReward(
            {p.id: p for p in request.data.train},
            request.selection.policy,
            sandbox,
            normalize=spec.reward.normalize,
            phase_index=plan.index,
            time_limit_s=spec.sandbox.time_limit_s,
            memory_limit_mb=spec.sandbox.memory_limit_mb,
            float_tolerance=spec.reward.float_tolerance,
        ),
        "tiered_reward",
    )
    formatted = RewardMeter(format_reward, "format_reward")
    cuda = torch.cuda.is_available()
    dtype = torch_dtype(spec.model.dtype, tiny)
    config = GRPOConfig(
        output_dir=str(phase_dir(request.out_dir, plan.index)),
        max_steps=plan.steps,
        learning_rate=t.learning_rate,
        # Every phase is its own trainer: a decaying schedule would restart at each phase boundary.
        lr_scheduler_type="constant",
        beta=t.beta,
        num_generations=t.num_generations,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        max_completion_length=t.max_completion_length,
        temperature=t.temperature,
        reward_weights=[1.0, spec.reward.format_weight],
        use_vllm=t.use_vllm,
        vllm_mode="colocate",
        gradient_checkpointing=t.gradient_checkpointing,
        seed=t.seed + plan.index,
        save_strategy="steps",
        save_steps=t.save_steps,
        logging_steps=t.logging_steps,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=cuda and dtype == torch.bfloat16,
        fp16=cuda and dtype == torch.float16,
        log_level="warning",
    )
    metrics = TrainMetrics()
    metrics.start_phase(plan.index, plan.steps)
    clock = GenerationClock()
    context = StepContext(
        phase=plan.index,
        phases=phases,
        total_steps=plan.steps,
        step_offset=plan.step_offset,
        out_dir=phase_dir(request.out_dir, plan.index),
        metrics=metrics,
        on_step=on_step,
        log_completions=request.log_completions,
    )
    logger = StepLogger(context, tiered, formatted, clock)
    trainer = TarotGRPOTrainer(
        model=model,
        reward_funcs=[tiered, formatted],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[logger],
        generation_clock=clock,
    )
    # Our StepLogger prints the steps; transformers' own printers would repeat them.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer, logger


def _save_final(trainer: Any, staged: Path) -> None:
    trainer.save_model(str(staged))
    trainer.processing_class.save_pretrained(str(staged))


def _last_logged_tokens(state: dict[str, Any]) -> float | None:
    for entry in reversed(state.get("log_history", [])):
        if "num_tokens" in entry:
            return float(entry["num_tokens"])
    return None


def _summary(
    request: PhaseRequest,
    plan: PhasePlan,
    phases: int,
    global_step: int,
    resumed_from: int | None,
    seconds: float,
) -> dict[str, Any]:
    from tarot_jobs.pipeline.training.steplog import STEPS_FILE, read_jsonl

    steps = read_jsonl(phase_dir(request.out_dir, plan.index) / STEPS_FILE)
    rewards = [s["reward"] for s in steps if s.get("reward") is not None]
    tier_rates: dict[str, float] = {}
    for tier in plan.tiers:
        values = [s["tier_pass_rate"][tier] for s in steps if tier in s.get("tier_pass_rate", {})]
        if values:
            tier_rates[tier] = sum(values) / len(values)
    final = final_weights(request.out_dir, plan.index)
    return {
        **plan.as_dict(),
        "phases": phases,
        "policy": request.selection.policy.name,
        "global_step": global_step,
        "resumed_from_step": resumed_from,
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "mean_tier_pass_rate": tier_rates,
        "logged_steps": len(steps),
        "final": str(final),
        "weights_kind": "adapter" if is_adapter(final) else "full",
        "seconds": round(seconds, 2),
    }
