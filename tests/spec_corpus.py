"""The shared corpus of bad TarotRuns (tests/data/bad_specs.yaml) and the good examples.

Read by the `tarot validate` test (tests/unit/spec/test_crd.py) and by the API-server test
(tests/integration/test_crd_api_server.py), so both judge the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tarot_jobs.spec.status import CONDITION_TYPES, TarotRunStatus

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "bad_specs.yaml"
EXAMPLES = REPO / "examples"


@dataclass(frozen=True)
class BadSpec:
    case: str
    field: str  # both the validator's and the API server's message must name it
    manifest: dict[str, Any]


def tarotrun(spec: dict[str, Any], name: str = "bad") -> dict[str, Any]:
    return {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": name}, "spec": spec}


def bad_specs() -> list[BadSpec]:
    entries = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    return [
        BadSpec(
            case=e["case"],
            field=e["field"],
            manifest=e.get("manifest") or tarotrun(e["spec"], e.get("name", "bad")),
        )
        for e in entries
    ]


def example_runs() -> dict[str, dict[str, Any]]:
    """examples/*.yaml that are TarotRun objects, by file name, without their namespace."""
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and document.get("kind") == "TarotRun":
            document["metadata"].pop("namespace", None)
            runs[path.name] = document
    return runs


def full_status() -> dict[str, Any]:
    """A status with every field the planner may write set (as the object holds it)."""
    tiers = {"basic": 0.5, "intermediate": 0.25, "complex": 0.125, "edge": 0.0}
    return TarotRunStatus.model_validate(
        {
            "phase": "Training",
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "observedGeneration": 2,
                    "lastTransitionTime": "2026-12-01T10:43:07Z",
                    "reason": "Because",
                    "message": "what to do",
                }
                for t in CONDITION_TYPES
            ],
            "startTime": "2026-12-01T10:43:07Z",
            "completionTime": "2026-12-01T11:43:07Z",
            "data": {"train": 50, "heldout": 14, "dropped": 1},
            "capability": {"score": 0.3, "passAtOne": {**tiers, "overall": 0.2}},
            "policy": {"name": "forward", "reason": "capability 0.3 < threshold 0.5"},
            "curriculum": {
                "currentPhase": 1,
                "phases": [
                    {
                        "index": 0,
                        "tiers": ["basic"],
                        "weights": tiers,
                        "steps": 5,
                        "completedSteps": 5,
                        "meanReward": 0.4,
                        "rewardPerTier": tiers,
                        "startTime": "2026-12-01T10:43:07Z",
                        "finishTime": "2026-12-01T10:53:07Z",
                    }
                ],
                "live": {
                    "phase": 1,
                    "step": 7,
                    "total": 24,
                    "meanReward": 0.5,
                    "rewardPerTier": tiers,
                    "etaSeconds": 60.0,
                    "updateTime": "2026-12-01T10:55:07Z",
                },
            },
            "progress": "2/4 29%",
            "reward": 0.5,
            "eta": "1m",
            "evaluation": {
                "before": {"passAtOne": {**tiers, "overall": 0.2}, "failedExecutions": 0},
                "after": {"passAtOne": {**tiers, "overall": 0.3}, "failedExecutions": 1},
            },
        }
    ).to_object()
