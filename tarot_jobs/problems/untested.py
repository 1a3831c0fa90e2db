"""Problems that have a statement and a gold solution but no tiered tests yet: what `tarot generate-tests`
starts from.

A `Problem` must carry at least one test, so these are read into `UntestedProblem`, which has the same
fields with `tests` allowed to be empty (the input's own tests, e.g. the statement's untiered example, are
kept). Records use the shapes the loaders read (records.py: canonical or TAROT field names); a record that
has no tests is parsed exactly like one that has, so every field is validated and named the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tarot_jobs.problems.errors import FieldError, ProblemFormatError, ProblemSourceError
from tarot_jobs.problems.loaders import JSONL_SUFFIXES
from tarot_jobs.problems.model import Problem, TestCase
from tarot_jobs.problems.records import RecordShape, detect_shape, parse_record
from tarot_jobs.sandbox.types import ProgramKind

# Stands in for the missing tests while a record is parsed, and is removed right after: it is never seen
# outside `parse_untested`.
_PLACEHOLDER = {"input": "", "output": "", "tier": None}


class UntestedProblem(BaseModel):
    """A Problem whose `tests` may be empty; `with_tests` turns it into a Problem."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    statement: str = Field(min_length=1)
    gold_solution: str = Field(min_length=1)
    language: str = "python"
    kind: ProgramKind = ProgramKind.STDIN_STDOUT
    entry_point: str | None = None
    checker_prelude: str | None = None
    tests: list[TestCase] = Field(default_factory=list)
    source: str | None = None

    def with_tests(self, tests: list[TestCase]) -> Problem:
        """The Problem with `tests` after this problem's own (ValueError when there are none at all)."""
        return Problem.model_validate({**self.model_dump(), "tests": [*self.tests, *tests]})


def parse_untested(record: Any) -> UntestedProblem:
    """One record (canonical or TAROT shape, tests optional); raises FieldError naming the bad field."""
    if not isinstance(record, Mapping):
        raise FieldError("", f"expected an object, got {type(record).__name__}")
    # A TAROT record may leave out `verification_info` altogether (the key that detects its shape).
    shape: RecordShape = "tarot" if "gold_standard_solution" in record else detect_shape(record)
    data = dict(record)
    untested = False
    if shape == "canonical" and not data.get("tests"):
        data["tests"], untested = [_PLACEHOLDER], True
    elif shape == "tarot":
        info = data.get("verification_info") or {}
        if isinstance(info, Mapping) and not info.get("test_cases"):
            data["verification_info"], untested = {**info, "test_cases": [_PLACEHOLDER]}, True
    problem = parse_record(data, shape)
    fields = problem.model_dump()
    fields["tests"] = [] if untested else problem.tests
    return UntestedProblem.model_validate(fields)


def read_untested(path: Path) -> list[UntestedProblem]:
    """The problems of a .jsonl or .json file; ProblemFormatError names the line (or index) and field."""
    problems: list[UntestedProblem] = []
    first_seen: dict[str, str] = {}
    for location, record in _records(path):
        try:
            problem = parse_untested(record)
        except FieldError as exc:
            raise ProblemFormatError(location, exc.field, exc.problem) from None
        if problem.id in first_seen:
            duplicate = f"duplicate problem id {problem.id!r} (first at {first_seen[problem.id]})"
            raise ProblemFormatError(location, "id", duplicate)
        first_seen[problem.id] = location
        problems.append(problem)
    if not problems:
        raise ProblemSourceError(f"{path}: contains no problem records")
    return problems


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, decoded record) pairs: `file:line` (1-based) for jsonl, `file[i]` for json."""
    suffix = path.suffix.lower()
    if suffix not in (*JSONL_SUFFIXES, ".json"):
        raise ProblemSourceError(f"{path}: unknown file type {path.suffix!r} (expected .jsonl or .json)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemSourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ProblemSourceError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if suffix == ".json":
        data = _decode(text, str(path))
        for index, record in enumerate(data if isinstance(data, list) else [data]):
            yield f"{path}[{index}]", record
        return
    # Split at "\n" only: JSON text may hold other line separators (U+2028) inside its strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield f"{path}:{number}", _decode(line, f"{path}:{number}")


def _decode(text: str, location: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProblemFormatError(location, "", f"not valid JSON ({exc.msg}, column {exc.colno})") from None
