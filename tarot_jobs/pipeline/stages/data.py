"""The problems a run trains and evaluates on: loaded, split and checked once.

The `bundled` set carries its own train/held-out split. Any other source is
split here by a seeded shuffle (`dataset.heldoutFraction`), unless
`dataset.heldoutSource` names a separate held-out set. With `dataset.check`
on, every gold solution runs on its tests first and bad tests (or problems)
are dropped, as TAROT's LLM-written tests require.

The data stage writes `train.jsonl`, `heldout.jsonl` and `check.json` (last,
so its presence marks a complete stage); later stages read those files so
every stage of a run sees exactly the same problems.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.problems.loaders import load_problems, save_problems
from tarot_jobs.problems.model import Problem, Tier
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec

TRAIN_FILE = "train.jsonl"
HELDOUT_FILE = "heldout.jsonl"
CHECK_FILE = "check.json"


class DataError(StageError):
    """The run's problems cannot be used; the message names the spec field or file."""


@dataclass(frozen=True)
class RunData:
    train: list[Problem]
    heldout: list[Problem]
    summary: dict[str, Any]


def prepare_data(
    spec: TarotRunSpec,
    sandbox: SandboxBackend,
    progress: Callable[[str], None] | None = None,
) -> RunData:
    """Load, split and (when the spec says so) check the run's problems."""
    say = progress or (lambda _msg: None)
    train, heldout = _load_split(spec)
    summary: dict[str, Any] = {
        "source": spec.dataset.source,
        "loaded": {"train": len(train), "heldout": len(heldout)},
    }
    if spec.dataset.check:
        from tarot_jobs.problems.check import check_problems

        for name, problems in (("train", train), ("heldout", heldout)):
            say(f"checking {len(problems)} {name} problems' tests against their gold solutions")
            report = check_problems(
                problems,
                sandbox,
                timeout_s=spec.sandbox.time_limit_s,
                memory_limit_mb=spec.sandbox.memory_limit_mb,
                require_all_tiers=spec.dataset.require_all_tiers,
            )
            summary[f"check_{name}"] = report.model_dump(mode="json")
            if name == "train":
                train = report.cleaned
            else:
                heldout = report.cleaned
    train = _with_used_tiers(train, set(spec.tiers))
    heldout = _with_used_tiers(heldout, set(spec.tiers))
    if spec.dataset.max_train_problems is not None:
        train = train[: spec.dataset.max_train_problems]
    if not train:
        raise DataError(f"dataset.source: {spec.dataset.source}: no usable training problems left")
    if not heldout:
        raise DataError(f"dataset.source: {spec.dataset.source}: no usable held-out problems left")
    summary["usable"] = {"train": len(train), "heldout": len(heldout)}
    return RunData(train=train, heldout=heldout, summary=summary)


def write_data(data: RunData, out_dir: Path) -> None:
    """Save the problems, then check.json (its presence marks the stage complete)."""
    save_problems(data.train, out_dir / TRAIN_FILE)
    save_problems(data.heldout, out_dir / HELDOUT_FILE)
    write_json_atomically(out_dir / CHECK_FILE, data.summary)


def data_complete(out_dir: Path) -> bool:
    return all((out_dir / name).is_file() for name in (TRAIN_FILE, HELDOUT_FILE, CHECK_FILE))


def read_data(out_dir: Path) -> RunData:
    """The problems a data stage wrote to `out_dir`."""
    if not data_complete(out_dir):
        raise DataError(
            f"{out_dir}: no complete data stage output (expected {TRAIN_FILE}, {HELDOUT_FILE}, {CHECK_FILE})"
        )
    import json

    return RunData(
        train=load_problems(out_dir / TRAIN_FILE, format="canonical").problems,
        heldout=load_problems(out_dir / HELDOUT_FILE, format="canonical").problems,
        summary=json.loads((out_dir / CHECK_FILE).read_text()),
    )


def _load_split(spec: TarotRunSpec) -> tuple[list[Problem], list[Problem]]:
    ds = spec.dataset
    if ds.source == "bundled":
        train = _load(f"{ds.source}:train", "dataset.source")
        heldout = (
            _load(ds.heldout_source, "dataset.heldoutSource")
            if ds.heldout_source
            else _load("bundled:heldout", "dataset.source")
        )
        return train, heldout
    problems = _load(ds.source, "dataset.source", ds.format)
    if ds.heldout_source:
        return problems, _load(ds.heldout_source, "dataset.heldoutSource", ds.format)
    if len(problems) < 2:
        raise DataError(
            f"dataset.source: {ds.source} holds {len(problems)} problem(s); a split needs at least 2"
        )
    order = list(range(len(problems)))
    random.Random(ds.seed).shuffle(order)
    count = min(max(1, round(len(problems) * ds.heldout_fraction)), len(problems) - 1)
    held = set(order[:count])
    return (
        [p for i, p in enumerate(problems) if i not in held],
        [p for i, p in enumerate(problems) if i in held],
    )


def _load(source: str, field: str, format: str = "auto") -> list[Problem]:
    from tarot_jobs.problems.errors import ProblemDataError

    try:
        return load_problems(source, format=format).problems  # type: ignore[arg-type]
    except ProblemDataError as exc:
        raise DataError(f"{field}: {exc}") from exc


def _with_used_tiers(problems: list[Problem], used: set[Tier]) -> list[Problem]:
    """Drop tests of tiers the run does not use (unlabelled tests stay: they carry no weight anyway)."""
    if used >= set(Tier):
        return problems
    kept = []
    for problem in problems:
        tests = [t for t in problem.tests if t.tier is None or t.tier in used]
        if any(t.tier is not None for t in tests):
            kept.append(problem.model_copy(update={"tests": tests}))
    return kept
