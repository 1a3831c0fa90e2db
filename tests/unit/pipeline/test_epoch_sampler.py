"""An epoch draws every training problem (issue 19 item 4).

trl's RepeatSampler cuts each epoch's permutation into batches of the prompts of one optimizer step
and drops the last batch when it is not full: with the 47 bundled training problems and 2 prompts per
step an epoch was 23 steps that drew 46 problems, and one problem (a different one every epoch) was
never trained on in that epoch. EpochSampler completes the last batch with the first problems of the
same epoch's order instead, so an epoch is ceil(problems / prompts per step) steps, draws every problem
once, and (problems mod prompts-per-step, when not 0) leaves prompts-per-step minus that many problems
drawn a second time; the order stays a function of (seed, epoch) alone. The run's step budget counts
epochs of that length (phases.total_steps).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from trl.trainer.utils import RepeatSampler

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.pipeline.training.phases import total_steps
from tarot_jobs.pipeline.training.trainer import EpochSampler
from tarot_jobs.spec.model import TarotRunSpec

BUNDLED_TRAIN = 47  # the bundled training split: the set the issue was found on
GENERATIONS = 4


def _sampler(problems: int, prompts_per_step: int, repeat: int = 1, seed: int = 7) -> EpochSampler:
    return EpochSampler(
        list(range(problems)),
        mini_repeat_count=GENERATIONS,
        batch_size=prompts_per_step,
        repeat_count=repeat,
        shuffle=True,
        seed=seed,
    )


def _steps(sampler: EpochSampler, epoch: int) -> list[list[int]]:
    """The prompts of each optimizer step of `epoch`, one entry per group (its repeats folded)."""
    sampler.set_epoch(epoch)
    drawn = list(sampler)
    assert len(drawn) == len(sampler)
    per_step = sampler.batch_size * GENERATIONS * sampler.repeat_count
    steps = [drawn[i : i + per_step] for i in range(0, len(drawn), per_step)]
    # Within a step: each prompt GENERATIONS times in a row (one group), the whole batch `repeat` times.
    for step in steps:
        groups = step[: sampler.batch_size * GENERATIONS : GENERATIONS]
        assert step == [p for _ in range(sampler.repeat_count) for p in groups for _ in range(GENERATIONS)]
    return [step[: sampler.batch_size * GENERATIONS : GENERATIONS] for step in steps]


@pytest.mark.parametrize(
    ("problems", "prompts_per_step"), [(BUNDLED_TRAIN, 2), (BUNDLED_TRAIN, 4), (5, 2), (3, 4), (48, 2)]
)
def test_every_problem_is_drawn_once_per_epoch(problems: int, prompts_per_step: int) -> None:
    sampler = _sampler(problems, prompts_per_step)
    steps_per_epoch = math.ceil(problems / prompts_per_step)
    for epoch in range(4):
        steps = _steps(sampler, epoch)
        assert len(steps) == steps_per_epoch, epoch
        drawn = Counter(p for step in steps for p in step)
        assert sorted(drawn) == list(range(problems)), (
            f"epoch {epoch} left out {set(range(problems)) - set(drawn)}"
        )
        # Only the last step is completed with problems drawn a second time, as few as fill it.
        assert sum(drawn.values()) == steps_per_epoch * prompts_per_step
        first = [p for step in steps[:-1] for p in step]
        assert len(set(first)) == len(first), "a problem twice before the epoch's last step"
        if problems >= prompts_per_step:
            assert len(set(steps[-1])) == prompts_per_step, "one problem twice in one step's batch"


def test_the_47_problem_epoch_in_numbers() -> None:
    """The figures of the issue: 2 prompts per step, the first 48 prompts (24 steps) of a run."""
    sampler = _sampler(BUNDLED_TRAIN, 2)
    assert len(sampler) == 24 * 2 * GENERATIONS  # 24 steps per epoch (trl's sampler: 23)
    first_epoch = [p for step in _steps(sampler, 0) for p in step]
    assert len(first_epoch) == 48 and len(set(first_epoch)) == BUNDLED_TRAIN


def test_the_order_is_a_function_of_seed_and_epoch() -> None:
    """A sampler built afresh and set to epoch e (a phase Job resumed in epoch e) draws what the sampler
    of the uninterrupted trainer draws in its epoch e, remainder batch included; another seed does not."""
    running = _sampler(BUNDLED_TRAIN, 2, repeat=2)
    epochs = [_steps(running, epoch) for epoch in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    for epoch in (2, 1, 0):
        assert _steps(_sampler(BUNDLED_TRAIN, 2, repeat=2), epoch) == epochs[epoch]
    assert _steps(_sampler(BUNDLED_TRAIN, 2, repeat=2, seed=8), 0) != epochs[0]


def test_without_a_remainder_the_order_is_trls() -> None:
    """Where every batch is full nothing changes: the same draws as trl's RepeatSampler, so runs whose
    problem count the batch divides (the trajectory tests' earlier runs) keep their numbers."""
    for epoch in range(3):
        ours = _sampler(48, 2, repeat=2)
        ours.set_epoch(epoch)
        trls = RepeatSampler(
            list(range(48)), mini_repeat_count=GENERATIONS, batch_size=2, repeat_count=2, seed=7
        )
        trls.generator.manual_seed(7 + epoch)
        assert list(ours) == list(trls)


def _spec(**training: object) -> TarotRunSpec:
    base = {"numGenerations": GENERATIONS, "perDeviceTrainBatchSize": 8, "gradientAccumulationSteps": 1}
    return TarotRunSpec.model_validate({"training": {**base, **training}})


def test_the_step_budget_counts_whole_epochs() -> None:
    """`training.epochs` (and the policies' epochs) count epochs of ceil(problems / prompts per step)
    steps, as the sampler draws them: 3 epochs of the 47 problems at 2 prompts per step are 72 steps,
    not ceil(3 x 47 / 2) = 71 (which stopped one step short of the third epoch's last problem)."""
    assert total_steps(_spec(epochs=1.0), get_policy("forward"), BUNDLED_TRAIN) == 24
    assert total_steps(_spec(epochs=3.0), get_policy("forward"), BUNDLED_TRAIN) == 72
    assert total_steps(_spec(), get_policy("forward-3epoch"), BUNDLED_TRAIN) == 72
    assert total_steps(_spec(epochs=0.5), get_policy("static"), BUNDLED_TRAIN) == 12
    assert total_steps(_spec(epochs=2.0), get_policy("static"), 40) == 40  # no remainder: unchanged


@pytest.mark.slow
def test_the_trainers_dataloader_draws_every_problem_each_epoch(tmp_path: Path) -> None:
    """What transformers' loop iterates: TarotGRPOTrainer's own training dataloader, epoch by epoch,
    is as many optimizer steps as the budget counts per epoch and holds every problem."""
    import datasets
    import trl
    from pipeline_helpers import SHARED_MODEL_CACHE

    from tarot_jobs.pipeline.model.tiny import tiny_model_dir
    from tarot_jobs.pipeline.training.phases import prompts_per_step
    from tarot_jobs.pipeline.training.steplog import StepTally
    from tarot_jobs.pipeline.training.trainer import TarotGRPOTrainer
    from tarot_jobs.problems.bundled import load_bundled

    problems = load_bundled("train")
    assert len(problems) == BUNDLED_TRAIN
    spec = _spec(epochs=1.0)
    model = str(tiny_model_dir(SHARED_MODEL_CACHE, problems))
    dataset = datasets.Dataset.from_list([{"prompt": p.statement, "problem_id": p.id} for p in problems])

    def zero(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        return [0.0] * len(completions)

    trainer = TarotGRPOTrainer(
        model=model,
        reward_funcs=[zero],
        args=trl.GRPOConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=spec.training.per_device_train_batch_size,
            num_generations=GENERATIONS,
            max_steps=total_steps(spec, get_policy("static"), BUNDLED_TRAIN),
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            seed=spec.training.seed,
        ),
        train_dataset=dataset,
        tally=StepTally(),
    )
    loader = trainer.get_train_dataloader()
    per_step = int(prompts_per_step(spec))
    assert len(loader) == math.ceil(BUNDLED_TRAIN / per_step) == total_steps(spec, get_policy("static"), 47)
    for epoch in range(2):
        loader.set_epoch(epoch)
        ids = [row["problem_id"] for batch in loader for row in batch]  # trl collates nothing: rows
        assert len(ids) == len(loader) * per_step * GENERATIONS
        assert len({*ids}) == BUNDLED_TRAIN, (
            f"epoch {epoch}: {BUNDLED_TRAIN - len({*ids})} problem(s) not drawn"
        )
