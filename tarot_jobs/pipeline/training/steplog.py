"""What a training phase records per logged step: steps.jsonl, completions.jsonl, Prometheus.

trl averages its metrics over each logging window and hands them to the
callbacks' `on_log`; `StepLogger` turns them into one JSON line per logged
step with the names the report and the dashboards use, adds what trl does not
know (sandbox verdict counts, time spent in the rewards), and feeds the
Prometheus gauges and the progress display.

`RewardMeter` wraps a reward function for trl: it passes the call through and
keeps the seconds spent, the verdicts of the tests run, and each completion
with its reward (so the log can be checked against `tarot score`).
`PhaseSwitch` points the tiered reward at the phase of the step being trained.
`StepTally` collects what the trainer and the yardstick add between two records
(generation time, dropped samples, yardstick measurements).

In a multi-process phase every process scores its share of the batch; `on_log` pools the meters'
shares of all processes (ranks.py) before the main process writes the one record of the step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tarot_jobs.pipeline.training.metrics import TrainMetrics
from tarot_jobs.pipeline.training.phases import PhasePlan, phase_at_step
from tarot_jobs.pipeline.training.ranks import is_main_process, pooled
from tarot_jobs.problems.model import ALL_TIERS
from tarot_jobs.rewards.extract import completion_text

STEPS_FILE = "steps.jsonl"
COMPLETIONS_FILE = "completions.jsonl"


@dataclass
class MeterShare:
    """What one reward meter saw since its last drain, in one process."""

    seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    tier_tests: dict[str, list[int]] = field(default_factory=dict)  # tier -> [passed, run]
    completions: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def pool(shares: Sequence[MeterShare]) -> MeterShare:
        """The processes' shares as one: counts added, completions in rank order, the main's seconds
        (each process spends about the same time on its share)."""
        total = MeterShare(seconds=shares[0].seconds)
        for share in shares:
            for verdict, count in share.verdicts.items():
                total.verdicts[verdict] = total.verdicts.get(verdict, 0) + count
            for tier, (passed, run) in share.tier_tests.items():
                counts = total.tier_tests.setdefault(tier, [0, 0])
                counts[0] += passed
                counts[1] += run
            total.completions.extend(share.completions)
        return total

    def tier_pass_rates(self) -> dict[str, float]:
        """Passed / run tests per tier, in tier order (tiers without a run test left out)."""
        rates: dict[str, float] = {}
        for tier in ALL_TIERS:
            passed, run = self.tier_tests.get(tier.value, (0, 0))
            if run:
                rates[tier.value] = passed / run
        return rates


class RewardMeter:
    """A trl reward function that measures the one it wraps."""

    def __init__(self, inner: Callable[..., Sequence[float | None]], name: str) -> None:
        self.inner = inner
        self.__name__ = name  # trl names the logged reward columns after it
        self.share = MeterShare()

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> Sequence[float | None]:
        started = time.perf_counter()
        rewards = self.inner(prompts=prompts, completions=completions, **kwargs)
        share = self.share
        share.seconds += time.perf_counter() - started
        for detail in getattr(self.inner, "last_details", []):
            for verdict, count in detail.verdict_counts().items():
                share.verdicts[verdict] = share.verdicts.get(verdict, 0) + count
            if detail.sandbox_failed:
                continue  # as trl's batch metric: a completion the sandbox failed on has no pass rate
            for tier, tally in detail.tiers.items():
                counts = share.tier_tests.setdefault(tier.value, [0, 0])
                counts[0] += tally.passed
                counts[1] += tally.total
        state = kwargs.get("trainer_state")
        step = (getattr(state, "global_step", 0) or 0) + 1  # these rewards feed the next optimizer step
        ids = kwargs.get("problem_id") or [None] * len(completions)
        for problem_id, completion, reward in zip(ids, completions, rewards, strict=True):
            share.completions.append(
                {
                    "step": step,
                    "problem_id": problem_id,
                    "completion": completion_text(completion),
                    "reward": reward,
                }
            )
        return rewards

    def drain(self) -> MeterShare:
        """What this process's meter saw since the previous drain."""
        taken, self.share = self.share, MeterShare()
        return taken


class PhaseSwitch:
    """The tiered reward of the phase that trains the current step: the reward that switches by progress.

    One object for the cut phase Jobs and the uninterrupted trainer alike: the
    phase comes from the run-wide global step (phases.phase_at_step), never from
    which Job is running, so cutting the run cannot change a reward.
    """

    __name__ = "tiered_reward"  # trl names the reward's log columns after it

    def __init__(self, reward: Any, plans: list[PhasePlan]) -> None:
        self.reward = reward
        self.plans = plans

    @property
    def last_details(self) -> Any:
        return self.reward.last_details

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> Sequence[float | None]:
        done = getattr(kwargs.get("trainer_state"), "global_step", 0) or 0
        self.reward.phase_index = phase_at_step(self.plans, done).index
        rewards: Sequence[float | None] = self.reward(prompts=prompts, completions=completions, **kwargs)
        return rewards


@dataclass
class StepTally:
    """What the trainer and the yardstick add up between two step records."""

    generation_seconds: float = 0.0
    dropped_samples: int = 0  # completions dropped because the sandbox failed on them after retries
    yardstick: list[dict[str, Any]] = field(default_factory=list)  # yardstick.py's measurements

    def drain(self) -> tuple[float, int, list[dict[str, Any]]]:
        taken = (self.generation_seconds, self.dropped_samples, self.yardstick)
        self.generation_seconds, self.dropped_samples, self.yardstick = 0.0, 0, []
        return taken


@dataclass
class StepContext:
    """Where a phase's step records go and how they are labelled.

    Steps are numbered run-wide (the trainer's global step): phase i's first
    record is step `plans[i].step_offset + 1`. `phase_step` counts within the phase.
    """

    plans: list[PhasePlan]
    phase: int  # the phase this trainer was started for (the first, for an uninterrupted trainer)
    out_dir: Path
    metrics: TrainMetrics | None = None
    on_step: Callable[[dict[str, Any]], None] | None = None
    say: Callable[[str], None] | None = None
    log_completions: bool = True
    started: float = field(default_factory=time.monotonic)


class StepLogger(TrainerCallback):
    """trl `on_log` → steps.jsonl (+ completions.jsonl, Prometheus, progress)."""

    def __init__(
        self, context: StepContext, tiered: RewardMeter, formatted: RewardMeter, tally: StepTally
    ) -> None:
        self.context = context
        self.tiered = tiered
        self.formatted = formatted
        self.tally = tally
        self._last_step = 0
        self._last_tokens: float | None = None

    def resume_from(self, step: int, num_tokens: float | None) -> None:
        """Continue after a checkpoint at `step`: drop the lines a killed run wrote past it."""
        self._last_step = step
        self._last_tokens = num_tokens
        if is_main_process():
            for name in (STEPS_FILE, COMPLETIONS_FILE):
                truncate_after(self.context.out_dir / name, step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not logs or "loss" not in logs:
            return  # the end-of-training summary
        # Every process logs the same steps: each hands its meters' shares to the main process.
        shares = pooled((self.tiered.drain(), self.formatted.drain()))
        tiered = MeterShare.pool([t for t, _ in shares])
        formatted = MeterShare.pool([f for _, f in shares])
        if not state.is_world_process_zero:
            return
        record = self._record(state.global_step, logs, tiered, formatted)
        if record["dropped_samples"] and self.context.say is not None:
            self.context.say(
                f"step {record['step']}: dropped {record['dropped_samples']} completions the sandbox "
                "failed on after its retries (left out of the loss and of their groups' statistics)"
            )
        with (self.context.out_dir / STEPS_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        if self.context.metrics is not None:
            self.context.metrics.update(record)
        if self.context.on_step is not None:
            self.context.on_step(record)

    def _record(
        self, step: int, logs: dict[str, Any], tiered: MeterShare, formatted: MeterShare
    ) -> dict[str, Any]:
        reward_s, verdicts, completions = tiered.seconds, tiered.verdicts, tiered.completions
        format_s, formats = formatted.seconds, formatted.completions
        generation_s, dropped, yardstick = self.tally.drain()
        steps = max(step - self._last_step, 1)
        step_time = _number(logs.get("step_time"))
        num_tokens = _number(logs.get("num_tokens"))
        tokens_per_second = None
        if num_tokens is not None and step_time:
            new_tokens = num_tokens - (self._last_tokens or 0.0)
            tokens_per_second = new_tokens / (step_time * steps)
        self._last_step, self._last_tokens = step, num_tokens
        if self.context.log_completions and completions:
            with (self.context.out_dir / COMPLETIONS_FILE).open("a", encoding="utf-8") as out:
                for item, fmt in zip(completions, formats, strict=False):
                    out.write(json.dumps({**item, "format_reward": fmt["reward"]}) + "\n")
        # Per step: trl's step_time is already a per-step mean; ours are sums over the window.
        reward_per_step = (reward_s + format_s) / steps
        generation_per_step = generation_s / steps
        seconds = {"generation": generation_per_step, "reward": reward_per_step}
        if step_time is not None:
            seconds["step"] = step_time
            seconds["rest"] = max(step_time - generation_per_step - reward_per_step, 0.0)
        plan = phase_at_step(self.context.plans, step - 1)
        return {
            "phase": plan.index,
            "step": step,
            "run_step": step,  # the same as step since steps are run-wide; kept for older readers
            "phase_step": step - plan.step_offset,
            "phase_steps": plan.steps,
            "total_steps": self.context.plans[-1].end_step,
            "reward": _number(logs.get("reward")),
            "reward_std": _number(logs.get("reward_std")),
            "tiered_reward": _number(logs.get("rewards/tiered_reward/mean")),
            "format_reward": _number(logs.get("rewards/format_reward/mean")),
            "tier_pass_rate": tiered.tier_pass_rates(),
            "kl": _number(logs.get("kl")),
            "loss": _number(logs.get("loss")),
            "entropy": _number(logs.get("entropy")),
            "learning_rate": _number(logs.get("learning_rate")),
            "completion_length": _number(logs.get("completions/mean_length")),
            "tokens_per_second": tokens_per_second,
            "sandbox_verdicts": dict(sorted(verdicts.items())),
            "sandbox_failed_fraction": _number(logs.get("sandbox/failed_fraction")),
            "dropped_samples": dropped,
            "yardstick": yardstick,
            "seconds": seconds,
            "elapsed_s": round(time.monotonic() - self.context.started, 3),
        }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_after(path: Path, step: int) -> None:
    """Keep only the records of steps up to `step` (rewritten through a rename)."""
    if not path.is_file():
        return
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    tmp.replace(path)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
