"""The control arm's reward: scored like the tiered reward, paid at random (docs/learning.md).

A gain measured after GRPO with the tiered reward means something only next to
a run with the same budget whose reward carries no information about the
program: small-scale RL has shown gains from random and format-only rewards.
`RandomReward` does all the tiered reward's work (the same sandbox runs, the
same logged pass rates, None for a sample the sandbox failed, which is then
dropped) and then pays each completion a number drawn uniformly from 0..1 by an
RNG seeded with (seed, optimizer step): independent of the program, the same
on every rerun and in every phase Job.

`install()` makes `tarot_jobs.rewards.TieredReward` this class for the current
process, which the train stage builds its reward from; bench/learning.py
runs its control arm's `tarot run` that way. It is not a spec option: no real
run should train on it.
"""

from __future__ import annotations

import random
from typing import Any

from tarot_jobs.rewards.tiered import TieredReward


class RandomReward(TieredReward):
    """TieredReward whose rewards are replaced by seeded uniform draws (sandbox failures stay None)."""

    __name__ = "tiered_reward"  # the trainer's log columns keep their names in both arms

    seed = 0

    def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
        """The tiered reward's arguments (prompts, completions, problem_id, trainer_state, ...)."""
        earned = super().__call__(*args, **kwargs)
        trainer_state = kwargs.get("trainer_state", args[3] if len(args) > 3 else None)
        step = getattr(trainer_state, "global_step", 0) or 0
        rng = random.Random(f"random-reward-{self.seed}-{step}")
        draws = [rng.random() for _ in earned]
        return [None if reward is None else draw for reward, draw in zip(earned, draws, strict=True)]


def install(seed: int) -> None:
    """Make every TieredReward the train stage builds in this process a RandomReward seeded by `seed`."""
    import tarot_jobs.rewards

    RandomReward.seed = seed
    tarot_jobs.rewards.TieredReward = RandomReward  # type: ignore[misc]
