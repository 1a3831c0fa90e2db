"""Ending a phase Job at its boundary step, with a checkpoint there for the next phase."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class StopAtBoundary(TrainerCallback):
    """Save and stop once the run-wide global step reaches `end_step`.

    The trainer is configured for the whole run (max_steps = the run's budget),
    so without this it would train on past its phase. The checkpoint saved at
    the boundary is what the next phase's Job resumes from.
    """

    def __init__(self, end_step: int) -> None:
        self.end_step = end_step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= self.end_step:
            control.should_save = True
            control.should_training_stop = True
        return control
