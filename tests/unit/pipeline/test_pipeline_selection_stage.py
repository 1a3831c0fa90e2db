"""The selection stage: capability.json + spec -> policy.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tarot_jobs.pipeline.stages.select import SelectionError, read_policy, select, write_policy
from tarot_jobs.spec.model import TarotRunSpec


def _capability(tmp_path: Path, score: float) -> Path:
    path = tmp_path / "capability.json"
    path.write_text(json.dumps({"score": score}))
    return path


@pytest.mark.parametrize(("score", "expected"), [(0.1, "forward"), (0.7, "reverse")])
def test_auto_follows_the_threshold(tmp_path: Path, score: float, expected: str) -> None:
    selection = select(TarotRunSpec(), _capability(tmp_path, score))
    assert selection.policy.name == expected
    assert selection.score == score and selection.threshold == 0.5
    written = write_policy(selection, tmp_path / "out")
    again = read_policy(written)
    assert again.policy == selection.policy
    assert again.reason == selection.reason


def test_auto_without_a_probe_is_refused() -> None:
    with pytest.raises(SelectionError, match="capability"):
        select(TarotRunSpec(), None)


def test_named_policy_needs_no_probe() -> None:
    spec = TarotRunSpec.model_validate({"curriculum": {"policy": "reverse-hard-heavy"}})
    selection = select(spec, None)
    assert selection.policy.name == "reverse-hard-heavy"
    assert selection.rule == "named"


def test_bad_capability_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "capability.json"
    path.write_text("{not json")
    with pytest.raises(SelectionError, match=r"capability\.json: not valid JSON"):
        select(TarotRunSpec(), path)
    path.write_text(json.dumps({"pass_at_1": {}}))
    with pytest.raises(SelectionError, match="'score' is missing"):
        select(TarotRunSpec(), path)


def test_missing_policy_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(SelectionError, match="tarot select"):
        read_policy(tmp_path / "policy.json")


def test_spec_tiers_remove_the_other_tiers_from_every_phase() -> None:
    spec = TarotRunSpec.model_validate({"tiers": ["basic", "edge"], "curriculum": {"policy": "static"}})
    selection = select(spec, None)
    used = set().union(*(phase.tiers for phase in selection.policy.phases))
    assert used == {"basic", "edge"}
