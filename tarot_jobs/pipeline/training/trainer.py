"""trl's GRPOTrainer with atomic checkpoints, a per-epoch sampler order, and dropped samples.

Imported only by the training stage: it pulls in torch, transformers and trl.
The trl hooks overridden here are pinned by tests/unit/pipeline/test_trl_hooks.py
(and trl's version range in pyproject.toml): a trl release that renames or
reshapes one fails that test instead of silently bypassing the override.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from tarot_jobs.atomic import STAGING_PREFIX, publish
from tarot_jobs.pipeline.training.checkpoints import prune_checkpoints
from tarot_jobs.pipeline.training.steplog import StepTally

# Checkpoints kept per phase: the newest, and one before it in case the newest's disk went bad.
KEEP_CHECKPOINTS = 2


class EpochSampler(RepeatSampler):
    """trl's RepeatSampler whose order is a function of (seed, epoch) alone, and whose epoch draws
    every training problem.

    trl's sampler draws each epoch's permutation from one generator that
    advances from epoch to epoch, so a trainer resumed in epoch e (a later
    phase's Job) would replay epoch 0's order. transformers calls
    `set_epoch(e)` before every epoch; seeding from it makes a resumed phase
    draw exactly what the uninterrupted trainer draws.

    trl also drops the last batch of an epoch (`batch_size` prompts: one
    optimizer step's) when the permutation does not fill it, so one problem
    or more went untrained every epoch (46 of 47 at 2 prompts per step).
    Here that batch is completed with the first problems of the same epoch's
    order: an epoch is ceil(problems / batch_size) batches, draws every
    problem once, and `batch_size - problems % batch_size` problems (when
    the remainder is not 0) a second time, in its last batch. Where the
    batch divides the problems the draws are exactly trl's.
    (docs/pipeline.md, "Training"; phases.total_steps counts epochs alike.)
    """

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator.manual_seed((self.seed or 0) + epoch)

    def _batches_per_epoch(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=self.generator).tolist()
        else:
            order = list(range(self.num_samples))
        # Wrap around within the epoch's own order: the last batch is filled from its first problems.
        padded = [order[i % len(order)] for i in range(self._batches_per_epoch() * self.batch_size)]
        for start in range(0, len(padded), self.batch_size):
            batch = padded[start : start + self.batch_size]
            for _ in range(self.repeat_count):
                for index in batch:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return self._batches_per_epoch() * self.batch_size * self.mini_repeat_count * self.repeat_count


class TarotGRPOTrainer(GRPOTrainer):
    """GRPOTrainer for tarot's phases.

    - checkpoints appear complete or not at all (checkpoints.py);
    - the sampler order depends on the epoch only (EpochSampler), so a phase
      resumed from the previous phase's checkpoint continues the trajectory;
    - a completion whose `primary_reward` (the tiered reward) is None, because
      the sandbox failed on it after its retries, is dropped from the step: every
      reward of it becomes None (trl would otherwise add the format reward to a 0),
      so trl leaves it out of its group's mean and std and gives it no advantage,
      and its tokens are masked out of the loss (no gradient, not even through
      the KL term, and not counted in the token normaliser).
    """

    def __init__(self, *args: Any, tally: StepTally, primary_reward: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally = tally
        self.primary_reward = primary_reward
        self._dropped_rows: torch.Tensor | None = None

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        # trl's own arguments for its RepeatSampler (GRPOTrainer._get_train_sampler), same order.
        args: Any = self.args
        num_generations = int(self.num_generations or 1)
        return EpochSampler(
            data_source=self.train_dataset if dataset is None else dataset,  # type: ignore[arg-type]
            mini_repeat_count=num_generations,
            batch_size=args.generation_batch_size // num_generations,
            repeat_count=self.num_iterations * args.steps_per_generation,
            shuffle=bool(self.shuffle_dataset),
            seed=args.seed,
        )

    def _generate(self, prompts: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            return super()._generate(prompts)
        finally:
            self.tally.generation_seconds += time.perf_counter() - started

    def _calculate_rewards(
        self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any
    ) -> torch.Tensor:
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Rows of every process (trl gathers them): a None primary reward drops the whole row.
        dropped = torch.isnan(rewards[:, self.primary_reward])
        rewards[dropped] = torch.nan
        self._dropped_rows = dropped
        return rewards

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        output: dict[str, Any] = super()._generate_and_score_completions(inputs)
        dropped_all = self._dropped_rows
        self._dropped_rows = None
        if dropped_all is None:  # trl scored nothing (cannot happen in training; keep trl's output)
            return output
        local = len(output["completion_mask"])
        start = self.accelerator.process_index * local
        dropped = dropped_all[start : start + local].to(output["completion_mask"].device)
        keep = (~dropped).to(output["completion_mask"].dtype).unsqueeze(1)
        output["completion_mask"] = output["completion_mask"] * keep
        loss_mask = output["completion_mask"]
        if "tool_mask" in output:
            loss_mask = loss_mask * output["tool_mask"]
        # The token count that the dapo/cispo losses divide by, without the dropped rows' tokens
        # (every process joins the gather, dropped rows or not).
        output["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        if self.model is not None and self.model.training and self.accelerator.is_main_process:
            self.tally.dropped_samples += int(dropped_all.sum().item())
        return output

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # transformers writes `<output_dir>/checkpoint-N` file by file. Point it at a
        # staging directory instead (every process writes there: each saves its own
        # RNG state), then the main process marks it complete and renames it into place.
        run_dir = Path(str(self.args.output_dir))
        name = f"checkpoint-{self.state.global_step}"
        staging_root = run_dir / f"{STAGING_PREFIX}{name}"
        if self.accelerator.is_main_process:
            shutil.rmtree(staging_root, ignore_errors=True)
            staging_root.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.args.output_dir = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = str(run_dir)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            publish(
                staging_root / name,
                run_dir / name,
                {"global_step": self.state.global_step, "max_steps": self.state.max_steps},
            )
            shutil.rmtree(staging_root, ignore_errors=True)
            prune_checkpoints(run_dir, KEEP_CHECKPOINTS)
        self.accelerator.wait_for_everyone()
