"""The tiered test reward of TAROT, usable as a trl `GRPOTrainer` reward function.

For one completion: take its program (extract_code), run it on the tests of
the tiers that the current curriculum phase allows, and add up the phase's
tier weight of every passed test. Normalised, that sum is divided by the
weight of all the allowed tests, so the reward lies in 0..1 whatever the
phase. Output comparison is the sandbox's job (exact lines after trimming
trailing whitespace, optional float tolerance).

A sandbox failure is not a wrong answer: a request whose execution failed
(a `sandbox_error` verdict, or the sandbox unreachable) is retried a bounded
number of times; if it still fails, the completion's reward is None, never 0.
None is the contract with the trainer: it drops that sample (masks it out of
the loss) and counts it in `tarot_reward_dropped_samples_total`; trl by
itself would sum None as 0 next to another reward function. A completion
with no program earns 0 without running anything.

Parity with the TAROT reference (for reproductions; off by default):
`strip_lines` compares whole lines after strip() (the reference ignores
leading spaces), and `unit_weight_single_tier` weighs a passed test 1.0 in
raw mode when the phase allows a single tier (the reference's `*_only`
reward files), whatever the policy's weight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

from pydantic import BaseModel, Field

from tarot_jobs.curriculum.policy import CurriculumPolicy, Phase, tier_order
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.rewards.extract import completion_text, extract_code
from tarot_jobs.sandbox.types import (
    ExecutionRequest,
    ExecutionResult,
    SandboxBackend,
    SandboxUnavailable,
    Verdict,
)

log = logging.getLogger(__name__)

NOT_RUN = "not_run"  # status of a test outside the phase's tiers (or of every test when there is no code)


class TestOutcome(BaseModel):
    __test__ = False

    tier: Tier | None
    status: str = Field(description="A sandbox verdict, or 'not_run'.")


class TierTally(BaseModel):
    passed: int = 0
    total: int = 0


class RewardDetail(BaseModel):
    """Everything the reward found out about one completion (for logging, `tarot score` and evaluation)."""

    problem_id: str
    reward: float | None = Field(description="None when the sandbox failed.")
    passed_weight: float = 0.0
    allowed_weight: float = 0.0
    code_found: bool = False
    sandbox_failed: bool = False
    tiers: dict[Tier, TierTally] = Field(
        default_factory=dict, description="Per run tier: passed/total tests."
    )
    tests: list[TestOutcome] = Field(
        default_factory=list, description="One per test, in the problem's order."
    )

    def verdict_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for test in self.tests:
            if test.status != NOT_RUN:
                counts[test.status] = counts.get(test.status, 0) + 1
        return counts


class _Plan:
    """Which tests of one completion will run, and the request that runs them."""

    def __init__(self, problem: Problem, completion: Any, phase: Phase, run_untiered: bool) -> None:
        self.problem = problem
        self.code = extract_code(completion_text(completion))
        self.indices = [
            i
            for i, test in enumerate(problem.tests)
            if test.tier in phase.tiers or (run_untiered and test.tier is None)
        ]

    @property
    def runs(self) -> bool:
        return self.code is not None and bool(self.indices)

    def request(
        self, time_limit_s: float, memory_limit_mb: int, float_tolerance: float | None, strip_lines: bool
    ) -> ExecutionRequest:
        assert self.code is not None
        tests: list[TestCase] = [self.problem.tests[i] for i in self.indices]
        request = self.problem.execution_request(
            self.code,
            tests,
            time_limit_s=time_limit_s,
            memory_limit_mb=memory_limit_mb,
            float_tolerance=float_tolerance,
        )
        return request.model_copy(update={"strip_lines": True}) if strip_lines else request


def _detail(
    plan: _Plan,
    phase: Phase,
    result: ExecutionResult | None,
    normalize: bool,
    unit_weight_single_tier: bool = False,
) -> RewardDetail:
    """Score one completion from its plan and (when it ran) the sandbox's result."""
    problem = plan.problem
    statuses = [NOT_RUN] * len(problem.tests)
    if result is not None:
        for index, test_result in zip(plan.indices, result.results, strict=True):
            statuses[index] = test_result.status.value
    allowed = [(i, t) for i, t in enumerate(problem.tests) if t.tier in phase.tiers]

    def weight(tier: Tier | None) -> float:
        if unit_weight_single_tier and not normalize and len(phase.tiers) == 1:
            return 1.0 if tier in phase.tiers else 0.0
        return phase.weight(tier)

    allowed_weight = sum(weight(t.tier) for _, t in allowed)
    passed_weight = sum(weight(t.tier) for i, t in allowed if statuses[i] == Verdict.PASSED.value)
    tiers = {
        tier: TierTally(
            passed=sum(1 for i, t in allowed if t.tier is tier and statuses[i] == Verdict.PASSED.value),
            total=sum(1 for _, t in allowed if t.tier is tier),
        )
        for tier in tier_order(phase.tiers)
    }
    sandbox_failed = result is not None and result.infrastructure_failed
    reward: float | None
    if sandbox_failed:
        reward = None
    elif normalize:
        # A problem with no test in the phase's tiers has nothing to earn: 0, like a group GRPO ignores.
        reward = passed_weight / allowed_weight if allowed_weight > 0 else 0.0
    else:
        reward = passed_weight
    return RewardDetail(
        problem_id=problem.id,
        reward=reward,
        passed_weight=passed_weight,
        allowed_weight=allowed_weight,
        code_found=plan.code is not None,
        sandbox_failed=sandbox_failed,
        tiers=tiers,
        tests=[TestOutcome(tier=t.tier, status=s) for t, s in zip(problem.tests, statuses, strict=True)],
    )


def _failed_detail(plan: _Plan, phase: Phase) -> RewardDetail:
    detail = _detail(plan, phase, None, normalize=True)
    return detail.model_copy(update={"reward": None, "sandbox_failed": True})


def _run_with_retries(
    sandbox: SandboxBackend, requests: list[ExecutionRequest], retries: int
) -> list[ExecutionResult | None]:
    """One result per request; requests whose execution failed are sent again, at most `retries`
    times. None: the sandbox never answered for it. A result may still carry sandbox errors."""
    answers: list[ExecutionResult | None] = [None] * len(requests)
    pending = list(range(len(requests)))
    for attempt in range(retries + 1):
        batch = [requests[i] for i in pending]
        try:
            got = sandbox.run_batch(batch)
            if len(got) != len(batch) or any(
                len(a.results) != len(r.tests) for a, r in zip(got, batch, strict=False)
            ):
                raise SandboxUnavailable("the sandbox's answer does not match the requests it was sent")
        except SandboxUnavailable as exc:
            log.warning("sandbox unavailable (attempt %d of %d): %s", attempt + 1, retries + 1, exc)
            continue
        still_failing = []
        for index, answer in zip(pending, got, strict=True):
            answers[index] = answer
            if answer.infrastructure_failed:
                still_failing.append(index)
        pending = still_failing
        if not pending:
            break
        log.warning("sandbox failed %d request(s); attempt %d of %d", len(pending), attempt + 1, retries + 1)
    return answers


def score_batch(
    items: Sequence[tuple[Problem, Any]],
    phase: Phase,
    sandbox: SandboxBackend,
    *,
    normalize: bool = True,
    time_limit_s: float = 5.0,
    memory_limit_mb: int = 512,
    float_tolerance: float | None = None,
    run_untiered: bool = False,
    retries: int = 2,
    strip_lines: bool = False,
    unit_weight_single_tier: bool = False,
) -> list[RewardDetail]:
    """Score (problem, completion) pairs under `phase` with `sandbox.run_batch` calls.

    `run_untiered` also runs tests without a tier (reported, never weighted),
    for harnesses that want every verdict. A request whose execution failed is
    retried up to `retries` times; a completion whose execution still failed
    has `sandbox_failed` set and a None reward.
    """
    plans = [_Plan(problem, completion, phase, run_untiered) for problem, completion in items]
    running = [p for p in plans if p.runs]
    results: dict[int, ExecutionResult | None] = {}
    if running:
        requests = [p.request(time_limit_s, memory_limit_mb, float_tolerance, strip_lines) for p in running]
        answers = _run_with_retries(sandbox, requests, retries)
        results = {id(p): answer for p, answer in zip(running, answers, strict=True)}
        failed = sum(1 for a in answers if a is None or a.infrastructure_failed)
        if failed:
            log.warning("%d completion(s) get no reward: their execution failed after retries", failed)
    details = []
    for plan in plans:
        if not plan.runs:
            details.append(_detail(plan, phase, None, normalize, unit_weight_single_tier))
        elif (answer := results[id(plan)]) is None:
            details.append(_failed_detail(plan, phase))
        else:
            details.append(_detail(plan, phase, answer, normalize, unit_weight_single_tier))
    return details


class ScoreOptions(TypedDict, total=False):
    """score_batch's keyword options, for the functions that pass them on."""

    normalize: bool
    time_limit_s: float
    memory_limit_mb: int
    float_tolerance: float | None
    run_untiered: bool
    retries: int
    strip_lines: bool
    unit_weight_single_tier: bool


def score_completion(
    problem: Problem, completion: Any, phase: Phase, sandbox: SandboxBackend, **options: Unpack[ScoreOptions]
) -> RewardDetail:
    """Score one completion of `problem` under `phase` (see score_batch)."""
    return score_batch([(problem, completion)], phase, sandbox, **options)[0]


class TieredReward:
    """trl reward function: `GRPOTrainer(reward_funcs=[TieredReward(...), format_reward], ...)`.

    trl calls it with the batch's prompts and completions plus every dataset
    column as a keyword list (this reward needs a `problem_id` column) and the
    `trainer_state`. The phase is `phase_index` when fixed (one training Job
    per phase), otherwise the policy's phase at progress
    global_step / max_steps. After each call `last_details` holds one
    RewardDetail per completion; when trl passes `log_metric`, the pass rate
    per tier and the number of sandbox failures are logged through it.

    A completion whose execution failed after `retries` retries gets None: the
    trainer drops it from the step (see the module docstring). A sandbox that
    stays unavailable for `max_unavailable_calls` calls in a row raises
    SandboxUnavailable, so a run fails instead of training on nothing.
    `strip_lines` and `unit_weight_single_tier` are the reference's rules
    (module docstring), off by default. The scoring keywords are score_batch's
    (`ScoreOptions`), with its defaults.
    """

    __name__ = "tiered_reward"  # trl names the reward's log columns after it

    def __init__(
        self,
        problems: Mapping[str, Problem],
        policy: CurriculumPolicy,
        sandbox: SandboxBackend,
        *,
        phase_index: int | None = None,
        max_unavailable_calls: int = 5,
        **options: Unpack[ScoreOptions],
    ) -> None:
        if phase_index is not None and not 0 <= phase_index < len(policy.phases):
            raise ValueError(
                f"phase_index {phase_index} is outside policy {policy.name}'s {len(policy.phases)} phases"
            )
        self.problems = problems
        self.policy = policy
        self.sandbox = sandbox
        self.phase_index = phase_index
        self.max_unavailable_calls = max_unavailable_calls
        self.options = options  # score_batch's, with its defaults
        self.last_details: list[RewardDetail] = []
        self.last_phase_index: int | None = None
        self._unavailable_calls = 0

    def current_phase_index(self, trainer_state: Any = None) -> int:
        if self.phase_index is not None:
            return self.phase_index
        step = getattr(trainer_state, "global_step", 0) or 0
        max_steps = getattr(trainer_state, "max_steps", 0) or 0
        progress = step / max_steps if max_steps > 0 else 0.0
        return self.policy.phase_index_at(progress)

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        problem_id: list[str],
        trainer_state: Any = None,
        **kwargs: Any,
    ) -> list[float | None]:
        if len(problem_id) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(problem_id)} problem ids")
        unknown = sorted({pid for pid in problem_id if pid not in self.problems})
        if unknown:
            raise KeyError(f"problem ids not among the reward's problems: {', '.join(unknown[:5])}")
        index = self.current_phase_index(trainer_state)
        phase = self.policy.phases[index]
        details = score_batch(
            [
                (self.problems[pid], completion)
                for pid, completion in zip(problem_id, completions, strict=True)
            ],
            phase,
            self.sandbox,
            **self.options,
        )
        self.last_details = details
        self.last_phase_index = index
        self._guard_against_dead_sandbox(details)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for name, value in batch_metrics(details).items():
                log_metric(name, value)
        return [d.reward for d in details]

    def _guard_against_dead_sandbox(self, details: list[RewardDetail]) -> None:
        needed_sandbox = [d for d in details if d.code_found]
        if needed_sandbox and all(d.sandbox_failed for d in needed_sandbox):
            self._unavailable_calls += 1
        else:
            self._unavailable_calls = 0
        if self._unavailable_calls >= self.max_unavailable_calls:
            raise SandboxUnavailable(
                f"the sandbox failed every completion of {self._unavailable_calls} reward calls in a row"
            )


def batch_metrics(details: Sequence[RewardDetail]) -> dict[str, float]:
    """Pass rate per tier over the batch's run tests, and the share of completions the sandbox failed."""
    metrics: dict[str, float] = {}
    scored = [d for d in details if not d.sandbox_failed]
    for tier in Tier:
        total = sum(d.tiers[tier].total for d in scored if tier in d.tiers)
        if total:
            metrics[f"tiers/{tier.value}/pass_rate"] = (
                sum(d.tiers[tier].passed for d in scored if tier in d.tiers) / total
            )
    if details:
        metrics["sandbox/failed_fraction"] = sum(d.sandbox_failed for d in details) / len(details)
        metrics["code/found_fraction"] = sum(d.code_found for d in details) / len(details)
    return metrics
