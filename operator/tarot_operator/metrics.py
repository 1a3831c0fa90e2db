"""The operator's Prometheus metrics (all names: docs/monitoring.md): per run from its status, and its own.

Per-run series carry only `namespace` and `run` (plus a bounded `phase`, `tier` or `stage`), and are
removed when the run is deleted, so the series count follows the number of live runs.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from tarot_jobs.spec.status import parse_rfc3339

PHASES = ("Pending", "Probing", "Selecting", "Training", "Evaluating", "Succeeded", "Failed", "Suspended")
TIERS = ("basic", "intermediate", "complex", "edge")
RUN = ("namespace", "run")

RUN_PHASE = Gauge("tarot_run_phase", "1 for the run's current phase, 0 for the others.", [*RUN, "phase"])
CAPABILITY = Gauge(
    "tarot_run_capability_score", "The probe's capability score of the base model (0..1).", RUN
)
CURRICULUM_PHASE = Gauge("tarot_run_curriculum_phase", "0-based index of the curriculum phase training.", RUN)
STEPS_COMPLETED = Gauge("tarot_run_steps_completed", "Optimizer steps done over all phases.", RUN)
STEPS_TOTAL = Gauge("tarot_run_steps_total", "Optimizer steps planned over all phases.", RUN)
REWARD = Gauge("tarot_run_reward_mean", "Latest mean reward of training.", RUN)
PASS_RATE = Gauge("tarot_run_pass_rate", "Training pass rate per tier at the latest step.", [*RUN, "tier"])
EVALUATION = Gauge(
    "tarot_run_evaluation_pass_at_1", "Held-out pass@1 before/after training.", [*RUN, "stage", "tier"]
)
LAST_PROGRESS = Gauge(
    "tarot_run_last_progress_timestamp_seconds", "Unix time of the train Job's latest progress report.", RUN
)
RECONCILES = Counter("tarot_operator_reconciles", "Reconciliations of a run, by outcome.", ["outcome"])
RECONCILE_SECONDS = Histogram(
    "tarot_operator_reconcile_duration_seconds",
    "Wall time of one reconciliation (observe, plan, apply).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
API_REQUESTS = Counter("tarot_operator_api_requests", "Requests of the operator's own API client.", ["verb"])
LEADER = Gauge(
    "tarot_operator_leader", "1 while this replica drives the runs (leader, or alone), 0 on standby."
)

_PER_RUN = (CAPABILITY, CURRICULUM_PHASE, STEPS_COMPLETED, STEPS_TOTAL, REWARD, LAST_PROGRESS)


def update_run(namespace: str, run: str, status: dict[str, Any]) -> None:
    """Set every per-run series from the run's status (camelCase, as the planner writes it)."""
    phase = status.get("phase", "Pending")
    for name in PHASES:
        RUN_PHASE.labels(namespace, run, name).set(1.0 if name == phase else 0.0)
    capability = status.get("capability") or {}
    if "score" in capability:
        CAPABILITY.labels(namespace, run).set(capability["score"])
    curriculum = status.get("curriculum") or {}
    phases = curriculum.get("phases") or []
    current = curriculum.get("currentPhase")
    if current is not None:
        CURRICULUM_PHASE.labels(namespace, run).set(current)
    if phases:
        STEPS_TOTAL.labels(namespace, run).set(sum(p.get("steps", 0) for p in phases))
        done = sum(p.get("steps", 0) if p.get("finishTime") else p.get("completedSteps", 0) for p in phases)
        STEPS_COMPLETED.labels(namespace, run).set(done)
    if status.get("reward") is not None:
        REWARD.labels(namespace, run).set(status["reward"])
    if current is not None and current < len(phases):
        for tier, rate in (phases[current].get("rewardPerTier") or {}).items():
            if tier in TIERS and rate is not None:
                PASS_RATE.labels(namespace, run, tier).set(rate)
    for stage in ("before", "after"):
        result = (status.get("evaluation") or {}).get(stage) or {}
        for tier, value in (result.get("passAtOne") or {}).items():
            if value is not None:
                EVALUATION.labels(namespace, run, stage, tier).set(value)
    updated = (curriculum.get("live") or {}).get("updateTime")
    if updated:
        LAST_PROGRESS.labels(namespace, run).set(parse_rfc3339(updated).timestamp())


def forget_run(namespace: str, run: str) -> None:
    """Drop a deleted run's series."""
    for name in PHASES:
        _remove(RUN_PHASE, namespace, run, name)
    for gauge in _PER_RUN:
        _remove(gauge, namespace, run)
    for tier in TIERS:
        _remove(PASS_RATE, namespace, run, tier)
    for stage in ("before", "after"):
        for tier in (*TIERS, "overall"):
            _remove(EVALUATION, namespace, run, stage, tier)


def _remove(metric: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set for this run
        metric.remove(*labels)
