"""Benchmark: where the time of one GRPO training step goes, on the tiny model.

Runs one real training phase (trl GRPOTrainer, the tiered + format rewards,
the local sandbox) on the bundled training problems and reads the step
records it writes. Each step is split into:
  - generation: sampling the completions (trl's `_generate`, timed by our trainer);
  - reward: the tiered reward (sandbox runs of every allowed test) and the format reward;
  - rest: reference/old log-probs, the loss, backpropagation and the optimizer step.
The first step is left out of the means (it pays one-off warm-up costs).
Prints a table, then one JSON line:
{"steps", "step_s", "generation_s", "reward_s", "rest_s", "reward_share", "generation_share",
"rest_share", "tokens_per_s", "completions_per_step", "dominant"}.

    python3 bench/pipeline.py [--steps 12] [--generations 4] [--batch 8] [--completion-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tarot_jobs.pipeline.model.loading import default_model_cache, resolve_base_model
from tarot_jobs.pipeline.selection import select_policy
from tarot_jobs.pipeline.stages.data import prepare_data
from tarot_jobs.pipeline.stages.train import PhaseRequest, train_phase
from tarot_jobs.pipeline.training.steplog import STEPS_FILE, read_jsonl
from tarot_jobs.pipeline.workspace import phase_dir
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.spec.model import TarotRunSpec


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=12, help="Optimizer steps to time.")
    parser.add_argument("--generations", type=int, default=4, help="Completions per prompt.")
    parser.add_argument("--batch", type=int, default=8, help="Completions per step.")
    parser.add_argument("--completion-tokens", type=int, default=96, help="Longest completion.")
    parser.add_argument("--workers", type=int, default=2, help="Sandbox workers.")
    parser.add_argument("--model-cache", type=Path, default=default_model_cache())
    args = parser.parse_args()
    console = Console(stderr=True)

    spec = TarotRunSpec.model_validate(
        {
            "model": {"name": "tiny"},
            "curriculum": {"policy": "static"},  # every tier's tests run: the most reward work per step
            "reward": {"formatWeight": 0.1},
            "training": {
                "maxSteps": args.steps,
                "learningRate": 1e-4,
                "beta": 0.02,
                "numGenerations": args.generations,
                "perDeviceTrainBatchSize": args.batch,
                "maxCompletionLength": args.completion_tokens,
                "temperature": 0.6,
                "saveSteps": 10_000,  # checkpoint writing is not part of a step
            },
            "sandbox": {"workers": args.workers, "timeLimitSeconds": 2, "memoryLimitMb": 256},
        }
    )
    with LocalSandbox(args.workers) as sandbox, tempfile.TemporaryDirectory() as tmp:
        console.print("loading and checking the bundled problems ...")
        data = prepare_data(spec, sandbox)
        base = resolve_base_model(spec.model, args.model_cache, data.train, progress=console.print)
        selection = select_policy(spec.curriculum, None)
        request = PhaseRequest(spec, selection, data, base, Path(tmp), 0, log_completions=False)
        console.print(f"training {args.steps} steps of {args.batch} completions on the tiny model ...")
        started = time.monotonic()
        train_phase(request, sandbox)
        wall = time.monotonic() - started
        steps = read_jsonl(phase_dir(Path(tmp), 0) / STEPS_FILE)

    timed = steps[1:] if len(steps) > 1 else steps
    parts = {
        part: statistics.mean(s["seconds"][part] for s in timed)
        for part in ("step", "generation", "reward", "rest")
    }
    shares = {part: parts[part] / parts["step"] for part in ("generation", "reward", "rest")}
    dominant = max(shares, key=lambda part: shares[part])
    tokens = statistics.mean(s["tokens_per_second"] for s in timed if s["tokens_per_second"] is not None)

    table = Table(
        title=f"GRPO step on the tiny model ({len(timed)} steps timed, {platform.processor() or 'cpu'})"
    )
    for column in ("part", "seconds per step", "share"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part in ("generation", "reward", "rest"):
        table.add_row(part, f"{parts[part]:.3f}", f"{100 * shares[part]:.1f}%")
    table.add_row("whole step", f"{parts['step']:.3f}", "100%")
    Console().print(table)
    print(
        json.dumps(
            {
                "steps": len(timed),
                "step_s": round(parts["step"], 4),
                "generation_s": round(parts["generation"], 4),
                "reward_s": round(parts["reward"], 4),
                "rest_s": round(parts["rest"], 4),
                "reward_share": round(shares["reward"], 4),
                "generation_share": round(shares["generation"], 4),
                "rest_share": round(shares["rest"], 4),
                "tokens_per_s": round(tokens, 1),
                "completions_per_step": args.batch,
                "dominant": dominant,
                "phase_wall_s": round(wall, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
