"""One record (a dict) of a problem file → one Problem, for each record shape we accept.

The shapes:
- `tarot`: the TAROT dataset (`problem`, `gold_standard_solution` in a ```python
  fence, `verification_info.test_cases[]` with `label` basic/medium/high/edge/null).
- `canonical`: our own field names (`id`, `statement`, `gold_solution`,
  `language`, `kind`, `entry_point`, `tests[{input, output, tier, reason}]`),
  which is also what `problem_to_record` writes.
- `humaneval`: function-style problems (`task_id`, `prompt`, `entry_point`,
  `test` defining `check(candidate)`, `canonical_solution`).

Parsers raise FieldError naming the field path; they know nothing about files,
so the same code serves jsonl, json, parquet and `datasets` rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import ValidationError

from tarot_jobs.problems.errors import FieldError
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.sandbox.types import ProgramKind

RecordShape = Literal["tarot", "canonical", "humaneval"]
RECORD_SHAPES: tuple[RecordShape, ...] = ("tarot", "canonical", "humaneval")

# The only language the sandbox executes; anything else could never be checked or rewarded.
SUPPORTED_LANGUAGE = "python"

# TAROT's data labels, and our canonical tier names, to tiers. Both are accepted everywhere.
TAROT_LABELS: dict[str, Tier] = {
    "basic": Tier.BASIC,
    "medium": Tier.INTERMEDIATE,
    "high": Tier.COMPLEX,
    "edge": Tier.EDGE,
}
TIER_NAMES: dict[str, Tier] = {**TAROT_LABELS, **{tier.value: tier for tier in Tier}}

_HUMANEVAL_FIELDS = frozenset({"prompt", "entry_point", "test", "canonical_solution"})

# A whole value that is one fenced block: ```python ... ``` (language tag optional).
_FENCED = re.compile(r"\A\s*```[\w+-]*[ \t]*\n(?P<code>.*?)\n?[ \t]*```\s*\Z", re.DOTALL)


def detect_shape(record: Mapping[str, Any]) -> RecordShape:
    """The record shape of one record, judged from its keys."""
    if "verification_info" in record:
        return "tarot"
    if record.keys() >= _HUMANEVAL_FIELDS:
        return "humaneval"
    return "canonical"


def parse_record(record: Any, shape: RecordShape) -> Problem:
    """Parse one record of the given shape; raises FieldError naming the bad field."""
    if not isinstance(record, Mapping):
        raise FieldError("", f"expected an object, got {type(record).__name__}")
    parsers: dict[RecordShape, Callable[[Mapping[str, Any]], Problem]] = {
        "tarot": parse_tarot,
        "canonical": parse_canonical,
        "humaneval": parse_humaneval,
    }
    return parsers[shape](record)


def parse_tarot(record: Mapping[str, Any]) -> Problem:
    problem_id = _tarot_id(record)
    statement = _text(record, "problem")
    gold = strip_code_fence(_text(record, "gold_standard_solution"), "gold_standard_solution")
    info = _decoded_json(record.get("verification_info"), "verification_info")
    if not isinstance(info, Mapping):
        raise FieldError("verification_info", f"expected an object, got {_type_name(info)}")
    _check_language(info.get("language", SUPPORTED_LANGUAGE), "verification_info.language")
    raw_tests = info.get("test_cases")
    if not isinstance(raw_tests, list) or not raw_tests:
        raise FieldError("verification_info.test_cases", "expected a non-empty list of tests")
    tests = [_tarot_test(raw, f"verification_info.test_cases[{i}]") for i, raw in enumerate(raw_tests)]
    source = record.get("source")
    return _build(
        {
            "id": problem_id,
            "statement": statement,
            "gold_solution": gold,
            "kind": ProgramKind.STDIN_STDOUT,
            "tests": tests,
            "source": source if isinstance(source, str) else None,
        },
        field_names={"id": "problem_id", "statement": "problem", "gold_solution": "gold_standard_solution"},
    )


def parse_canonical(record: Mapping[str, Any]) -> Problem:
    data = dict(record)
    _check_language(data.get("language", SUPPORTED_LANGUAGE), "language")
    tests = _decoded_json(data.get("tests"), "tests")
    if isinstance(tests, list):
        data["tests"] = [_canonical_test(raw, f"tests[{i}]") for i, raw in enumerate(tests)]
    return _build(data)


def parse_humaneval(record: Mapping[str, Any]) -> Problem:
    """HumanEval shape: the program is prompt + canonical_solution; one untiered test runs `check`, after
    the prompt as the checker's prelude (its helpers are the tests', whatever the program defines)."""
    task_id = record.get("task_id")
    if not isinstance(task_id, str | int) or isinstance(task_id, bool) or str(task_id) == "":
        raise FieldError("task_id", "missing or empty")
    prompt = _text(record, "prompt")
    entry_point = _text(record, "entry_point")
    if not entry_point.isidentifier():
        raise FieldError("entry_point", f"{entry_point!r} is not a Python identifier")
    test_code = _text(record, "test")
    solution = _text(record, "canonical_solution")
    check_call = f"\n\ncheck({entry_point})\n"
    return _build(
        {
            "id": str(task_id),
            "statement": prompt,
            "gold_solution": prompt + solution,
            "kind": ProgramKind.FUNCTION,
            "entry_point": entry_point,
            "checker_prelude": prompt,
            "tests": [TestCase(input=test_code.rstrip() + check_call, output=None, tier=None)],
        }
    )


def problem_to_record(problem: Problem) -> dict[str, Any]:
    """The canonical record of a problem (what `parse_canonical` reads back)."""
    return problem.model_dump(mode="json")


def strip_code_fence(text: str, field: str) -> str:
    """The code inside a ```python fence (or the text itself when it has no fence)."""
    match = _FENCED.match(text)
    if match:
        code = match.group("code")
    elif text.lstrip().startswith("```"):
        raise FieldError(field, "starts a ``` code fence that is not closed at the end of the value")
    else:
        code = text
    if not code.strip():
        raise FieldError(field, "contains no code")
    return code if code.endswith("\n") else code + "\n"


def parse_tier(value: Any, field: str, *, expected: str) -> Tier | None:
    """A tier from a TAROT label or canonical tier name; None/'none' means no tier."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, Tier):
        return value
    if isinstance(value, str) and value.strip().lower() in TIER_NAMES:
        return TIER_NAMES[value.strip().lower()]
    raise FieldError(field, f"unknown tier {value!r} (expected {expected})")


def _tarot_id(record: Mapping[str, Any]) -> str:
    for key in ("problem_id", "in_source_id"):
        value = record.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    raise FieldError("problem_id", "missing (and no in_source_id to fall back on)")


def _tarot_test(raw: Any, path: str) -> TestCase:
    if not isinstance(raw, Mapping):
        raise FieldError(path, f"expected an object, got {_type_name(raw)}")
    test_type = raw.get("type", "stdin_stdout")
    if test_type != "stdin_stdout":
        raise FieldError(f"{path}.type", f"unsupported test type {test_type!r} (expected 'stdin_stdout')")
    tier = parse_tier(raw.get("label"), f"{path}.label", expected="basic, medium, high, edge or null")
    reason = raw.get("reason")
    return TestCase(
        input=_text(raw, "input", path, allow_empty=True),
        output=_text(raw, "output", path, allow_empty=True),
        tier=tier,
        reason=reason if isinstance(reason, str) else "",
    )


def _canonical_test(raw: Any, path: str) -> Any:
    """Normalise the tier of one canonical test; the rest is validated by the Problem model."""
    if not isinstance(raw, Mapping):
        return raw  # the model reports the wrong type with its path
    test = dict(raw)
    test["tier"] = parse_tier(
        test.get("tier"),
        f"{path}.tier",
        expected="basic, intermediate, complex, edge (or medium, high) or null",
    )
    if test.get("reason") is None:
        test.pop("reason", None)
    return test


def _build(data: Mapping[str, Any], field_names: Mapping[str, str] | None = None) -> Problem:
    """Validate into a Problem, turning pydantic's errors into one FieldError with field paths."""
    try:
        return Problem.model_validate(data)
    except ValidationError as exc:
        renames = field_names or {}
        issues = []
        for error in exc.errors():
            loc = [
                str(renames.get(str(part), part)) if i == 0 else part for i, part in enumerate(error["loc"])
            ]
            issues.append((_field_path(loc), _describe(error)))
        first_field, first_problem = issues[0]
        extra = "".join(f"; {field}: {problem}" for field, problem in issues[1:])
        raise FieldError(first_field, first_problem + extra) from exc


def _field_path(loc: list[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _describe(error: Any) -> str:
    if error["type"] == "missing":
        return "missing"
    message = str(error["msg"])
    # Model-level validators report "Value error, <field>: <msg>"; keep just the message.
    return message.removeprefix("Value error, ")


def _text(record: Mapping[str, Any], key: str, parent: str = "", *, allow_empty: bool = False) -> str:
    path = f"{parent}.{key}" if parent else key
    value = record.get(key)
    if value is None:
        raise FieldError(path, "missing")
    if not isinstance(value, str):
        raise FieldError(path, f"expected a string, got {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise FieldError(path, "empty")
    return value


def _decoded_json(value: Any, field: str) -> Any:
    """Nested values stored as JSON strings (common in parquet/hub exports) are decoded."""
    if value is None:
        raise FieldError(field, "missing")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise FieldError(field, f"a string that is not valid JSON ({exc.msg})") from exc
    return value


def _check_language(value: Any, field: str) -> None:
    if value != SUPPORTED_LANGUAGE:
        raise FieldError(
            field, f"unsupported language {value!r} (only {SUPPORTED_LANGUAGE!r} can be executed)"
        )


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
