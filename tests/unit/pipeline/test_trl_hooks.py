"""The trl internals tarot overrides still exist with the signatures we wrote against.

TarotGRPOTrainer overrides private GRPOTrainer methods (generation clock,
dropped samples, atomic checkpoints, per-epoch sampler order). A trl release
that renames one would silently bypass the override (the subclass method is
just never called); one that changes its parameters would break it at run
time. pyproject.toml bounds trl to the range tested; this test fails loudly,
naming the hook, when that bound is moved without checking.
"""

from __future__ import annotations

import inspect

import pytest
import trl
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from tarot_jobs.pipeline.training.trainer import EpochSampler, TarotGRPOTrainer

# Each hook and the parameters (after self) it had in the trl versions tested.
HOOKS = {
    "_generate": ["prompts"],
    "_calculate_rewards": ["inputs", "prompts", "completions", "completion_ids_list"],
    "_generate_and_score_completions": ["inputs"],
    "_save_checkpoint": ["model", "trial"],
    "_get_train_sampler": ["dataset"],
}


def _parameters(function: object) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]  # type: ignore[arg-type]


def test_every_override_is_pinned() -> None:
    overridden = {
        name
        for name, value in vars(TarotGRPOTrainer).items()
        if callable(value) and not name.startswith("__") and hasattr(GRPOTrainer, name)
    }
    assert overridden == set(HOOKS), "a new override of a trl method needs its signature pinned here"


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_trl_still_has_the_hook(hook: str) -> None:
    assert hook in {name for cls in GRPOTrainer.__mro__ for name in vars(cls)}, (
        f"trl {trl.__version__}: GRPOTrainer.{hook} is gone; TarotGRPOTrainer's override would never run"
    )
    assert _parameters(getattr(GRPOTrainer, hook)) == HOOKS[hook], (
        f"trl {trl.__version__}: GRPOTrainer.{hook} changed its parameters"
    )


def test_repeat_sampler_is_built_as_trl_builds_it() -> None:
    """EpochSampler is constructed with RepeatSampler's arguments and reseeds its generator per epoch."""
    assert _parameters(RepeatSampler.__init__) == [
        "data_source",
        "mini_repeat_count",
        "batch_size",
        "repeat_count",
        "shuffle",
        "seed",
    ]

    def sampler() -> EpochSampler:
        return EpochSampler(list(range(6)), mini_repeat_count=1, batch_size=2, shuffle=True, seed=3)

    running = sampler()
    orders = [list(running) for _ in range(2)]  # epochs 0 and 1 of one trainer, without set_epoch
    assert all(sorted(order) == list(range(6)) for order in orders)  # each item once per epoch
    resumed = sampler()  # a later phase's Job, resumed in epoch 1
    resumed.set_epoch(1)
    running.set_epoch(1)
    assert list(resumed) == list(running)
    running.set_epoch(0)
    assert list(running) == orders[0]
