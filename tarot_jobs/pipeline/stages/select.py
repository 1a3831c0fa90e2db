"""The selection stage: capability.json + the spec's curriculum rule → policy.json.

policy.json holds the chosen policy as data (its phases, tiers and weights),
the rule that chose it and why (score, threshold), so the training stage and
the report read one file and never re-derive the choice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.pipeline.selection import Selection, select_policy
from tarot_jobs.spec.model import TarotRunSpec

POLICY_FILE = "policy.json"


class SelectionError(StageError):
    """The policy cannot be chosen; the message names the file or spec field."""


def read_capability_score(path: Path) -> float:
    """The overall capability score a probe wrote to capability.json."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise SelectionError(f"{path}: cannot read the capability file: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise SelectionError(f"{path}: not valid JSON ({exc.msg})") from None
    score = data.get("score") if isinstance(data, dict) else None
    if not isinstance(score, int | float):
        raise SelectionError(f"{path}: field 'score' is missing or not a number")
    return float(score)


def select(spec: TarotRunSpec, capability_file: Path | None) -> Selection:
    """Apply the spec's rule; `auto` needs the probe's capability.json."""
    score = None
    if capability_file is not None:
        score = read_capability_score(capability_file)
    elif spec.curriculum.policy == "auto":
        raise SelectionError(
            "curriculum.policy is 'auto': the capability file from `tarot probe` is required (--capability)"
        )
    try:
        return select_policy(spec.curriculum, score, weights_override=spec.reward.weights, tiers=spec.tiers)
    except ValueError as exc:
        raise SelectionError(str(exc)) from exc


def write_policy(selection: Selection, out_dir: Path) -> Path:
    target = out_dir / POLICY_FILE
    write_json_atomically(target, selection.model_dump(mode="json"))
    return target


def read_policy(path: Path) -> Selection:
    try:
        data: Any = json.loads(path.read_text())
        return Selection.model_validate(data)
    except OSError as exc:
        raise SelectionError(
            f"{path}: cannot read the policy file ({exc.strerror or exc}); run `tarot select` first"
        ) from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise SelectionError(f"{path}: not a policy file written by `tarot select`: {exc}") from None
