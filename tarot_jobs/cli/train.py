"""`tarot train SPEC --phase I --out DIR [--resume]`: one curriculum phase of GRPO training.

Multi-GPU: run the same command under accelerate, one process per GPU, e.g.

    accelerate launch --num_processes 8 $(which tarot) train spec.yaml --phase 0 --out /ckpt

(`resources.gpus` in the spec must match: it sizes the generation batch.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tarot_jobs.cli.stage_options import (
    DataOption,
    ModelCacheOption,
    SpecArgument,
    model_cache,
    read_spec,
    stage_errors,
    stdout,
)


def train_command(
    spec_file: SpecArgument,
    phase: Annotated[
        int, typer.Option("--phase", min=0, help="Index of the curriculum phase to train (0-based).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Training directory; the phase writes DIR/phase-<I>/.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest complete checkpoint of this phase.")
    ] = False,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="policy.json from `tarot select` (default: DIR/policy.json)."),
    ] = None,
    data: DataOption = None,
    cache: ModelCacheOption = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", min=1, max=65535, help="Serve Prometheus metrics here.")
    ] = None,
    log_completions: Annotated[
        bool, typer.Option(help="Write every completion and its rewards to completions.jsonl.")
    ] = True,
) -> None:
    """Train phase I with GRPO: the phase's tiered reward plus the format reward, for its share of steps."""
    from tarot_jobs.pipeline.context import base_model, open_sandbox, stage_data
    from tarot_jobs.pipeline.progress import Reporter
    from tarot_jobs.pipeline.stages.select import POLICY_FILE, read_policy
    from tarot_jobs.pipeline.stages.train import PhaseRequest, check_training_options, plan_for, train_phase

    spec = read_spec(spec_file)
    reporter = Reporter()
    with stage_errors():
        check_training_options(spec)
        selection = read_policy(policy or out / POLICY_FILE)
        with open_sandbox(spec) as sandbox:
            run_data = stage_data(spec, data, sandbox, reporter)
            base = base_model(spec, run_data, model_cache(cache), reporter)
            request = PhaseRequest(
                spec, selection, run_data, base, out, phase, resume, metrics_port, log_completions
            )
            plans = plan_for(request)
            steps = plans[phase].steps if phase < len(plans) else 0
            label = (
                f"phase {phase + 1}/{len(plans)} [{'+'.join(t[0].upper() for t in plans[phase].tiers)}]"
                if steps
                else ""
            )
            with reporter.task(label or "train", max(steps, 1)) as task:
                done = 0

                def on_step(record: dict[str, Any]) -> None:
                    nonlocal done
                    task.advance(record["step"] - done, info=_step_info(record))
                    done = record["step"]

                summary = train_phase(request, sandbox, on_step=on_step, say=reporter.log)
    reward = summary["mean_reward"]
    stdout.print(
        f"phase {phase} done: {summary['global_step']} steps, mean reward "
        f"{'-' if reward is None else f'{reward:.3f}'}; final weights in {summary['final']}"
    )


def _step_info(record: dict[str, Any]) -> str:
    parts = []
    for key, label in (("reward", "reward"), ("kl", "kl"), ("loss", "loss")):
        if record.get(key) is not None:
            parts.append(f"{label} {record[key]:.3f}")
    if record.get("tokens_per_second") is not None:
        parts.append(f"{record['tokens_per_second']:.0f} tok/s")
    return ", ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
