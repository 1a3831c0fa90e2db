"""`tarot train SPEC --phase I --out DIR [--resume]`: one curriculum phase of GRPO training.

Several processes (GPUs, or CPU processes with gloo): run the same command under torchrun, e.g.

    torchrun --nproc-per-node 8 --no-python tarot train spec.yaml --phase 0 --out /ckpt

(the spec's world size, `resources.processesPerNode` x `resources.nodes`, must match: it sizes the
generation batch). `tarot run` and the operator launch it so when the world size is above 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tarot_jobs.cli.output import exit_codes, reporter, stdout, write_result
from tarot_jobs.cli.stage_options import DataOption, ModelCacheOption, SpecArgument, model_cache, read_spec
from tarot_jobs.lifecycle.results import train_result


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
    from tarot_jobs.lifecycle.progress_report import report_progress
    from tarot_jobs.pipeline.context import base_model, open_sandbox, stage_data
    from tarot_jobs.pipeline.progress import phase_label, step_progress
    from tarot_jobs.pipeline.stages.select import POLICY_FILE, read_policy
    from tarot_jobs.pipeline.stages.train import PhaseRequest, check_training_options, plan_for, train_phase

    spec = read_spec(spec_file)
    report = reporter()
    with exit_codes():
        check_training_options(spec)
        selection = read_policy(policy or out / POLICY_FILE)
        with open_sandbox(spec) as sandbox:
            run_data = stage_data(spec, data, sandbox, report)
            base = base_model(spec, run_data, model_cache(cache), report)
            request = PhaseRequest(
                spec, selection, run_data, base, out, phase, resume, metrics_port, log_completions
            )
            plans = plan_for(request)
            label = phase_label(phase, len(plans), plans[phase].tiers) if phase < len(plans) else "train"
            steps = plans[phase].steps if phase < len(plans) else 0
            with step_progress(report, label, steps, report_progress) as on_step:
                summary = train_phase(request, sandbox, on_step=on_step, say=report.log)
    from tarot_jobs.pipeline.training import ranks

    if ranks.is_local_main_process():  # a pod's processes share its result file: one writes it
        write_result(train_result(summary))
    if not ranks.is_main_process():
        return
    reward = summary["mean_reward"]
    stdout.print(
        f"phase {phase} done at run step {summary['global_step']}, mean reward "
        f"{'-' if reward is None else f'{reward:.3f}'}; final weights in {summary['final']}"
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
