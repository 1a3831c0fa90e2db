"""tarot's own problem set, shipped inside the package.

Each problem lives in one readable YAML file under `problems/` (code and
multi-line I/O as literal block scalars). The set is split once, by hand, into
`train` and `heldout`; the split is part of the data so that every run, probe
and evaluation sees the same held-out problems.

The files are read through importlib.resources so the set also loads from an
installed wheel or zip, not only from a source checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.sandbox.types import ProgramKind

Split = Literal["train", "heldout"]
Difficulty = Literal["trivial", "easy", "medium", "hard"]

BUNDLED_SPLITS: tuple[Split, ...] = get_args(Split)
BUNDLED_DIFFICULTIES: tuple[Difficulty, ...] = get_args(Difficulty)
BUNDLED_SOURCE = "tarot-bundled"

_PROBLEM_DIR = "problems"
# libyaml's loader parses the ~1.5 MB set about ten times faster than the pure-Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BundledDataError(ValueError):
    """A bundled problem file is malformed; the message names the file and the field."""


class _TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: Tier | None
    input: str
    output: str | None = None
    reason: str = ""


class _ProblemFile(BaseModel):
    """The on-disk shape of one problem file (stricter than Problem: no unknown keys)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    title: str | None = None
    split: Split
    difficulty: Difficulty
    kind: ProgramKind
    entry_point: str | None = None
    statement: str = Field(min_length=1)
    gold_solution: str = Field(min_length=1)
    tests: list[_TestFile] = Field(min_length=1)


@dataclass(frozen=True)
class BundledProblem:
    """A bundled problem with the bookkeeping that Problem does not carry."""

    problem: Problem
    split: Split
    difficulty: Difficulty
    title: str | None


def _parse(name: str, text: str) -> BundledProblem:
    try:
        raw = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise BundledDataError(f"{name}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundledDataError(f"{name}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        spec = _ProblemFile.model_validate(raw)
        problem = Problem(
            id=spec.id,
            statement=spec.statement,
            gold_solution=spec.gold_solution,
            kind=spec.kind,
            entry_point=spec.entry_point,
            tests=[
                TestCase(input=t.input, output=t.output, tier=t.tier, reason=t.reason) for t in spec.tests
            ],
            source=BUNDLED_SOURCE,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise BundledDataError(f"{name}: {problems}") from exc
    if f"{spec.id}.yaml" != name:
        raise BundledDataError(f"{name}: id {spec.id!r} does not match the file name")
    return BundledProblem(problem=problem, split=spec.split, difficulty=spec.difficulty, title=spec.title)


def _problem_files() -> list[Traversable]:
    folder = resources.files(__name__).joinpath(_PROBLEM_DIR)
    return sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)


@lru_cache(maxsize=1)
def _load_all() -> tuple[BundledProblem, ...]:
    return tuple(_parse(f.name, f.read_text(encoding="utf-8")) for f in _problem_files())


def load_bundled_entries(split: Split | None = None) -> list[BundledProblem]:
    """The bundled problems with their split and difficulty, ordered by id."""
    if split is not None and split not in BUNDLED_SPLITS:
        raise ValueError(f"split: expected one of {BUNDLED_SPLITS} or None, got {split!r}")
    return [entry for entry in _load_all() if split is None or entry.split == split]


def load_bundled(split: Split | None = None) -> list[Problem]:
    """The bundled problems of one split ('train' or 'heldout'), or all of them; ordered by id."""
    return [entry.problem for entry in load_bundled_entries(split)]


__all__ = [
    "BUNDLED_DIFFICULTIES",
    "BUNDLED_SOURCE",
    "BUNDLED_SPLITS",
    "BundledDataError",
    "BundledProblem",
    "Difficulty",
    "Split",
    "load_bundled",
    "load_bundled_entries",
]
