"""A fixed yardstick during training (`training.evalEverySteps`).

The phase reward cannot show progress: its meaning changes at every phase
boundary (other tiers, other weights). The yardstick is one fixed measure for
the whole run: greedy pass@1, all tiers, on the first `training.evalProblems`
training problems, measured before the first step and every N steps after.
Each measurement goes to yardstick.jsonl in the phase directory and into the
next step record (and so the report's plot and the Prometheus gauge).

Greedy decoding draws no random numbers, and the measurement runs inside
`torch.random.fork_rng`, so switching the yardstick on does not change the
trajectory; nor does cutting the run into phases change where it measures
(steps are run-wide).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tarot_jobs.pipeline.model.generation import sample_completions
from tarot_jobs.pipeline.model.prompts import render_prompt
from tarot_jobs.pipeline.scoring import score_samples, summarize
from tarot_jobs.pipeline.training.ranks import is_main_process
from tarot_jobs.pipeline.training.steplog import StepTally, truncate_after
from tarot_jobs.problems.model import Problem
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec

YARDSTICK_FILE = "yardstick.jsonl"


def yardstick_problems(spec: TarotRunSpec, train: Sequence[Problem]) -> list[Problem]:
    """The fixed set: the first `training.evalProblems` training problems by id (stable across phases)."""
    return sorted(train, key=lambda p: p.id)[: spec.training.eval_problems]


class Yardstick(TrainerCallback):
    """Measures greedy pass@1 on the yardstick set at step 0 and every `every` run-wide steps."""

    def __init__(
        self,
        spec: TarotRunSpec,
        problems: Sequence[Problem],
        tokenizer: Any,
        sandbox: SandboxBackend,
        out_dir: Path,
        tally: StepTally,
    ) -> None:
        every = spec.training.eval_every_steps
        if every is None:
            raise ValueError("training.evalEverySteps is not set")
        self.every = every
        self.spec = spec
        self.problems = list(problems)
        self.prompts = [render_prompt(tokenizer, p, spec.training.max_prompt_length) for p in self.problems]
        self.tokenizer = tokenizer
        self.sandbox = sandbox
        self.path = out_dir / YARDSTICK_FILE
        self.tally = tally

    def resume_from(self, step: int) -> None:
        """Drop measurements a killed run made past the checkpoint it resumes from."""
        if is_main_process():  # the process that measures (and so writes) the yardstick
            truncate_after(self.path, step)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.global_step == 0 and state.is_world_process_zero:
            self._measure(model, 0)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.global_step % self.every == 0 and state.is_world_process_zero:
            self._measure(model, state.global_step)

    def _measure(self, model: Any, step: int) -> None:
        import torch

        was_training = model.training
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            completions = sample_completions(
                model,
                self.tokenizer,
                self.prompts,
                samples=1,
                temperature=0.0,
                max_new_tokens=self.spec.training.max_completion_length,
                seed=self.spec.training.seed,
            )
        if was_training:
            model.train()
        scores = score_samples(
            self.problems,
            completions,
            self.sandbox,
            time_limit_s=self.spec.sandbox.time_limit_s,
            memory_limit_mb=self.spec.sandbox.memory_limit_mb,
            float_tolerance=self.spec.reward.float_tolerance,
        )
        summary = summarize(scores, ks=(1,))
        measurement = {
            "step": step,
            "pass_at_1": summary["pass@1"],
            "problems": len(self.problems),
            "sandbox_failed": summary["counts"]["sandbox_failed"],
        }
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(measurement) + "\n")
        self.tally.yardstick.append(measurement)
