"""Each stage's output, cut down to the small result its executor reads (STATUS-CONTRACT.md,
"Job results"; the shapes are tarot_jobs/lifecycle/results.py's models, validated here on the way out).

Pure functions of what the stages return, so they are tested without running a stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tarot_jobs.lifecycle.results import DataResult, EvaluateResult, ProbeResult, TrainResult
from tarot_jobs.spec.status import SandboxUsage


def data_result(summary: Mapping[str, Any], sandbox: SandboxUsage | None = None) -> DataResult:
    """From the data stage's check.json summary: usable problems, and those the check dropped."""
    dropped = sum(
        int(report["problems"]) - int(report["usable_problems"])
        for name in ("check_train", "check_heldout")
        if (report := summary.get(name)) is not None
    )
    usable = summary["usable"]
    return DataResult(train=usable["train"], heldout=usable["heldout"], dropped=dropped, sandbox=sandbox)


def probe_result(capability: Mapping[str, Any], sandbox: SandboxUsage | None = None) -> ProbeResult:
    """From capability.json: the score selection compares, and pass@1 per tier."""
    return ProbeResult.model_validate(
        {"score": capability["score"], "pass_at_one": _present(capability["pass_at_1"]), "sandbox": sandbox}
    )


def train_result(summary: Mapping[str, Any]) -> TrainResult:
    """From the phase summary (phase.json): its steps, how many are done, reward, its weights, and the
    sandbox that scored its rewards (tarot_jobs.pipeline.sandbox_usage)."""
    completed = max(0, min(int(summary["global_step"]) - int(summary["step_offset"]), int(summary["steps"])))
    return TrainResult.model_validate(
        {
            "phase": summary["index"],
            "steps": summary["steps"],
            "completed_steps": completed,
            "mean_reward": summary.get("mean_reward"),
            "reward_per_tier": _present(summary.get("mean_tier_pass_rate") or {}),
            "checkpoint": summary.get("final"),
            "sandbox": summary.get("sandbox"),
            "world_size": summary.get("world_size"),
        }
    )


def evaluate_result(evaluation: Mapping[str, Any], sandbox: SandboxUsage | None = None) -> EvaluateResult:
    """From evaluation.json: held-out pass@1 per tier, and completions the sandbox failed to run."""
    heldout = evaluation["heldout"]
    return EvaluateResult.model_validate(
        {
            "pass_at_one": _present(heldout["pass@1"]),
            "failed_executions": heldout["counts"]["sandbox_failed"],
            "sandbox": sandbox,
        }
    )


def _present(values: Mapping[str, float | None]) -> dict[str, float]:
    """Tiers without a value (none judged) are left out, as the status schema expects."""
    return {key: value for key, value in values.items() if value is not None}
