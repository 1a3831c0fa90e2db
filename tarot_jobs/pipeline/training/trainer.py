"""trl's GRPOTrainer with atomic checkpoints and a clock on generation.

Imported only by the training stage: it pulls in torch, transformers and trl.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from trl import GRPOTrainer

from tarot_jobs.atomic import STAGING_PREFIX, publish
from tarot_jobs.pipeline.training.checkpoints import prune_checkpoints
from tarot_jobs.pipeline.training.steplog import GenerationClock

# Checkpoints kept per phase: the newest, and one before it in case the newest's disk went bad.
KEEP_CHECKPOINTS = 2


class TarotGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose checkpoints appear complete or not at all (see checkpoints.py)."""

    def __init__(self, *args: Any, generation_clock: GenerationClock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generation_clock = generation_clock

    def _generate(self, prompts: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            return super()._generate(prompts)
        finally:
            self.generation_clock.seconds += time.perf_counter() - started

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
