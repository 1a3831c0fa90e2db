"""The training stage: one curriculum phase of GRPO (`tarot train SPEC --phase I --out DIR`).

A run is ONE training trajectory (docs/pipeline.md, "Training"), as in the reference:
one trainer whose tiered reward switches phase by the run-wide step. Each
phase Job is a cut of it. Every phase's trainer is configured for the whole
run (step budget, learning-rate schedule, seed and sampler order) with the
base model as KL reference; phase 0 starts from the base model, phase I > 0
resumes from phase I-1's boundary checkpoint (weights or adapter, optimizer,
scheduler, RNG, global step: transformers' resume), and every phase stops at
its boundary step after saving a checkpoint there. Steps are numbered
run-wide everywhere (logs, metrics, `checkpoint-N`). Cutting does not change
the numbers: tests/unit/pipeline/test_training_trajectory.py trains both ways
and compares them.

Phase I writes into DIR/phase-I/:

- checkpoint-N/  complete checkpoints only, N run-wide, newest two kept (the
  newest is the phase boundary once the phase is done);
- steps.jsonl    one record per logged step (steplog.py);
- completions.jsonl  every completion with its rewards;
- yardstick.jsonl  the fixed yardstick's measurements (training.evalEverySteps);
- final/         the weights (or LoRA adapter) and tokenizer at the boundary, for evaluation;
- phase.json     the phase's summary, written last: the phase is complete
  exactly when it exists.

`resume=True` continues a killed phase from its newest complete checkpoint.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import COMPLETE_MARKER, is_complete, write_atomically, write_json_atomically
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
from tarot_jobs.pipeline.sandbox_usage import CountingSandbox
from tarot_jobs.pipeline.selection import Selection
from tarot_jobs.pipeline.stages.data import RunData
from tarot_jobs.pipeline.training.checkpoints import (
    CHECKPOINT_PREFIX,
    complete_checkpoints,
    latest_checkpoint,
    remove_leftovers,
)
from tarot_jobs.pipeline.training.phases import PhasePlan, plan_phases
from tarot_jobs.pipeline.workspace import final_weights, phase_dir
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec, TrainingSpec

PHASE_FILE = "phase.json"


def phase_complete(out_dir: Path, index: int) -> bool:
    return (phase_dir(out_dir, index) / PHASE_FILE).is_file() and is_complete(final_weights(out_dir, index))


def read_phase_summary(out_dir: Path, index: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((phase_dir(out_dir, index) / PHASE_FILE).read_text())
    return data


NO_GENERATION_SERVER = (
    "training.vllmServer.url: generation vllm-server needs a running vLLM server, and only the operator "
    "starts one (for a cluster run); here, start `trl vllm-serve --model <model.name>` yourself and set "
    "training.vllmServer.url to it, or set training.generation to vllm-colocate or transformers"
)


def check_training_options(spec: TarotRunSpec) -> None:
    """Fail before any model is loaded when the spec asks for something this machine lacks."""
    generation = spec.training.generation
    if generation == "transformers":
        return
    server = spec.training.generation_server()
    if server is not None and server.url is None:
        # On a cluster the operator writes its server's URL into the spec the train Jobs read.
        raise StageError(NO_GENERATION_SERVER)
    # trl needs vLLM in the trainer in both modes: the server's client syncs weights through vLLM's NCCL.
    if importlib.util.find_spec("vllm") is None:
        raise StageError(
            f"training.generation: {generation} needs vLLM, which is not installed; install it on a CUDA "
            "machine (pip install vllm) or set training.generation: transformers"
        )
    import torch

    if not torch.cuda.is_available():
        raise StageError(f"training.generation: {generation} needs a CUDA GPU and none is visible")


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
    # Train on through this later phase in the same trainer, without cutting (None: `phase` only).
    # The uninterrupted reference trajectory that the cut phases must reproduce.
    through_phase: int | None = None


def plan_for(request: PhaseRequest) -> list[PhasePlan]:
    return plan_phases(request.spec, request.selection.policy, len(request.data.train))


def boundary_checkpoint(out_dir: Path, plan: PhasePlan) -> Path:
    """The checkpoint a finished phase leaves at its last step; the next phase resumes from it."""
    return phase_dir(out_dir, plan.index) / f"{CHECKPOINT_PREFIX}{plan.end_step}"


def train_phase(
    request: PhaseRequest,
    sandbox: SandboxBackend,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one phase to its boundary (or finish a resumed one); returns phase.json's content."""
    log = say or (lambda _msg: None)
    spec, out_dir, index = request.spec, request.out_dir, request.phase
    plans = plan_for(request)
    last = index if request.through_phase is None else request.through_phase
    for wanted in (index, last):
        if not 0 <= wanted < len(plans):
            raise StageError(
                f"--phase: policy {request.selection.policy.name} has {len(plans)} phases "
                f"(0..{len(plans) - 1}), not {wanted}"
            )
    stop = plans[last]
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
    previous = None
    if index > 0:
        previous = boundary_checkpoint(out_dir, plans[index - 1])
        if not phase_complete(out_dir, index - 1) or not is_complete(previous):
            raise StageError(
                f"{phase_dir(out_dir, index - 1)}: phase {index - 1} has not finished; phase {index} "
                f"resumes from its boundary checkpoint ({previous})"
            )
    check_training_options(spec)
    from tarot_jobs.pipeline.training import ranks

    if ranks.world_size() != spec.training_processes():
        raise StageError(
            f"resources: the spec trains with {spec.training_processes()} processes (processesPerNode x "
            f"nodes) but {ranks.world_size()} were launched; launch it with torchrun as `tarot run` does"
        )
    main = ranks.is_main_process()  # of a multi-process phase, the one that writes its files
    if main:
        for leftover in remove_leftovers(run_dir):
            log(f"removed incomplete {leftover.name} left by an interrupted run")
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Every reward and yardstick score goes through it: phase.json says which sandbox scored how many tests.
    counted = CountingSandbox(sandbox)
    trainer, logger, yardstick = _build_trainer(request, plans, stop, counted, on_step, log)
    own = latest_checkpoint(run_dir) if request.resume else None
    checkpoint = own or previous
    resumed_from = None
    if checkpoint is not None:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        resumed_from = int(state["global_step"])
        logger.resume_from(resumed_from, _last_logged_tokens(state))
        if yardstick is not None:
            yardstick.resume_from(resumed_from)
        origin = "its own" if own is not None else f"phase {index - 1}'s boundary"
        log(f"phase {index}: resuming from {origin} checkpoint {checkpoint} (step {resumed_from})")
    else:
        logger.resume_from(0, None)
        if yardstick is not None:
            yardstick.resume_from(0)
    server = None
    if request.metrics_port is not None and logger.context.metrics is not None:
        server = logger.context.metrics.serve_phase(request.metrics_port, log)
    trained = False
    digests: list[str] | None = None
    try:
        if own is not None and resumed_from == stop.end_step:
            # Killed after its boundary checkpoint, before final/: nothing is left to train (transformers
            # would train one step past the boundary before any callback could stop it).
            global_step = stop.end_step
            save_final: Callable[[Path], None] = functools.partial(_final_from_checkpoint, own)
        else:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
            global_step = int(trainer.state.global_step)
            save_final = functools.partial(_save_final, trainer)
            digests = ranks.pooled(ranks.weights_digest(trainer.model))
        trained = True
    finally:
        if server is not None:
            # A finished phase holds /metrics until its last step has been scraped (about two scrape
            # intervals at most; at once when nothing scrapes it), so the pod's end loses no value.
            server.stop(final_scrape=trained, say=log)
    if global_step != stop.end_step or not is_complete(run_dir / f"{CHECKPOINT_PREFIX}{stop.end_step}"):
        raise StageError(
            f"phase {index}: training stopped at step {global_step} without its boundary checkpoint "
            f"at step {stop.end_step}"
        )
    if digests is not None and len(set(digests)) > 1:
        raise StageError(
            f"phase {index}: the {len(digests)} training processes ended with different weights "
            f"(SHA-256 by rank: {', '.join(d[:12] for d in digests)}); their gradients were not averaged"
        )
    usage = counted.usage()
    usage.scored_tests = sum(ranks.pooled(usage.scored_tests))  # every process scores its share of the batch
    if main:
        write_atomically(
            final_weights(out_dir, index), save_final, {"phase": index, "global_step": global_step}
        )
        summary = _summary(request, plans, global_step, checkpoint, resumed_from, time.monotonic() - started)
        summary["world_size"] = ranks.world_size()
        summary["rank_weights_sha256"] = digests  # None: nothing was trained in this attempt
        summary["sandbox"] = usage.model_dump(mode="json")
        write_json_atomically(run_dir / PHASE_FILE, summary)
    ranks.barrier()  # the other processes return the summary the main process wrote
    return summary if main else read_phase_summary(out_dir, index)


def _build_trainer(
    request: PhaseRequest,
    plans: list[PhasePlan],
    stop: PhasePlan,
    sandbox: SandboxBackend,
    on_step: Callable[[dict[str, Any]], None] | None,
    say: Callable[[str], None],
) -> tuple[Any, Any, Any]:
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback, set_seed
    from trl import GRPOConfig

    from tarot_jobs.pipeline.training.boundary import StopAtBoundary
    from tarot_jobs.pipeline.training.metrics import TrainMetrics
    from tarot_jobs.pipeline.training.steplog import (
        PhaseSwitch,
        RewardMeter,
        StepContext,
        StepLogger,
        StepTally,
    )
    from tarot_jobs.pipeline.training.trainer import TarotGRPOTrainer
    from tarot_jobs.pipeline.training.yardstick import Yardstick, yardstick_problems
    from tarot_jobs.rewards import TieredReward, format_reward

    spec, t = request.spec, request.spec.training
    tiny = request.base.is_tiny
    run_dir = phase_dir(request.out_dir, request.phase)
    prepare_runtime(tiny)
    # trl's config still spells activation checkpointing the old way; the rename warning is noise here.
    warnings.filterwarnings(
        "ignore", message=".*deprecated and will be removed in v6.*", category=FutureWarning
    )
    # Every phase builds the same starting point (the base model; a LoRA adapter initialised from the
    # same seed); a resumed phase then loads the previous phase's weights over it.
    set_seed(t.seed)
    model = load_for_training(request.base.path, spec.model, tiny=tiny)
    tokenizer = load_tokenizer(request.base.path, spec.model)
    dataset = Dataset.from_list(
        [
            {"prompt": render_prompt(tokenizer, p, t.max_prompt_length), "problem_id": p.id}
            for p in request.data.train
        ]
    )
    tiered = RewardMeter(
        PhaseSwitch(
            TieredReward(
                {p.id: p for p in request.data.train},
                request.selection.policy,
                sandbox,
                normalize=spec.reward.normalize,
                phase_index=request.phase,
                time_limit_s=spec.sandbox.time_limit_s,
                memory_limit_mb=spec.sandbox.memory_limit_mb,
                float_tolerance=spec.reward.float_tolerance,
            ),
            plans,
        ),
        "tiered_reward",
    )
    formatted = RewardMeter(format_reward, "format_reward")
    cuda = torch.cuda.is_available()
    dtype = torch_dtype(spec.model.dtype, tiny)
    config = GRPOConfig(
        **grpo_config_arguments(
            spec,
            run_dir,
            plans[-1].end_step,
            cuda=cuda,
            bf16=cuda and dtype == torch.bfloat16,
            fp16=cuda and dtype == torch.float16,
        )
    )
    metrics = TrainMetrics()
    metrics.start_phase(request.phase, plans[-1].end_step)
    tally = StepTally()
    context = StepContext(
        plans=plans,
        phase=request.phase,
        out_dir=run_dir,
        metrics=metrics,
        on_step=on_step,
        say=say,
        log_completions=request.log_completions,
    )
    logger = StepLogger(context, tiered, formatted, tally)
    callbacks: list[Any] = [StopAtBoundary(stop.end_step), logger]
    yardstick = None
    if t.eval_every_steps is not None:
        yardstick = Yardstick(
            spec,
            yardstick_problems(spec, request.data.train),
            tokenizer,
            sandbox,
            run_dir,
            tally,
        )
        callbacks.insert(0, yardstick)
    trainer = TarotGRPOTrainer(
        model=model,
        reward_funcs=[tiered, formatted],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
        tally=tally,
        primary_reward=0,
    )
    # Our StepLogger prints the steps; transformers' own printers would repeat them.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer, logger, yardstick


def grpo_config_arguments(
    spec: TarotRunSpec, run_dir: Path, max_steps: int, *, cuda: bool, bf16: bool, fp16: bool
) -> dict[str, Any]:
    """trl GRPOConfig's keyword arguments for a phase of this run: every spec.training field that trl
    reads lands here (tests/unit/pipeline/test_grpo_config.py fails on a new field that is neither
    mapped here nor named there as read elsewhere)."""
    t = spec.training
    return dict(
        output_dir=str(run_dir),
        # The whole run's budget: the schedule and the trainer's progress are the trajectory's,
        # whichever phase this Job trains; StopAtBoundary ends the Job at the phase's last step.
        max_steps=max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,  # transformers reads a float in [0, 1) as a share of max_steps
        loss_type=t.loss_type,
        beta=t.beta,
        num_generations=t.num_generations,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        max_completion_length=t.max_completion_length,
        temperature=t.temperature,
        reward_weights=[1.0, spec.reward.format_weight],
        **generation_options(t),
        gradient_checkpointing=t.gradient_checkpointing,
        # Every parameter of a causal LM (or LoRA adapter) gets a gradient each step: DDP need not search
        # the graph for unused ones (transformers' default does, and warns about it every run).
        ddp_find_unused_parameters=False,
        seed=t.seed,
        save_strategy="steps",
        save_steps=t.save_steps,
        logging_steps=t.logging_steps,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=bf16,
        fp16=fp16,
        log_level="warning",
    )


def generation_options(training: TrainingSpec) -> dict[str, Any]:
    """trl GRPOConfig's generation fields for training.generation (vllm_mode "colocate" or "server").

    With a server, trl's client waits up to vllm_server_timeout for its /health before the first step;
    tarot adds no wait of its own.
    """
    if training.generation == "transformers":
        return {"use_vllm": False}
    server = training.generation_server()
    if server is None:
        return {"use_vllm": True, "vllm_mode": "colocate"}
    return {
        "use_vllm": True,
        "vllm_mode": "server",
        "vllm_server_base_url": server.url,
        "vllm_server_timeout": server.timeout_seconds,
    }


def _save_final(trainer: Any, staged: Path) -> None:
    trainer.save_model(str(staged))
    trainer.processing_class.save_pretrained(str(staged))


# What a transformers checkpoint holds besides the model and tokenizer files.
_TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin")


def _final_from_checkpoint(checkpoint: Path, staged: Path) -> None:
    """final/ from a checkpoint's model (or adapter) and tokenizer files, without the training state."""
    staged.mkdir(parents=True, exist_ok=True)
    for path in checkpoint.iterdir():
        state = (
            path.name in _TRAINING_STATE or path.name.startswith("rng_state") or path.name == COMPLETE_MARKER
        )
        if path.is_file() and not state:
            shutil.copy2(path, staged / path.name)


def _last_logged_tokens(state: dict[str, Any]) -> float | None:
    for entry in reversed(state.get("log_history", [])):
        if "num_tokens" in entry:
            return float(entry["num_tokens"])
    return None


def _summary(
    request: PhaseRequest,
    plans: list[PhasePlan],
    global_step: int,
    checkpoint: Path | None,
    resumed_from: int | None,
    seconds: float,
) -> dict[str, Any]:
    from tarot_jobs.pipeline.training.steplog import STEPS_FILE, read_jsonl

    plan = plans[request.phase]
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
        "phases": len(plans),
        "run_steps": plans[-1].end_step,
        "policy": request.selection.policy.name,
        "global_step": global_step,
        "resumed_from": None if checkpoint is None else str(checkpoint),
        "resumed_from_step": resumed_from,
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "mean_tier_pass_rate": tier_rates,
        "dropped_samples": sum(int(s.get("dropped_samples", 0)) for s in steps),
        "logged_steps": len(steps),
        "final": str(final),
        "weights_kind": "adapter" if is_adapter(final) else "full",
        "seconds": round(seconds, 2),
    }
