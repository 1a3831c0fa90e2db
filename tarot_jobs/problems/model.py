"""The in-memory model of a problem and its four-tier tests.

Every loader (TAROT jsonl, canonical json/jsonl/parquet, Hugging Face datasets,
HumanEval shape, the bundled set) produces these objects, and everything
downstream (checking, rewards, probe, evaluation) consumes only these.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tarot_jobs.sandbox.types import ExecutionRequest, ProgramKind, TestSpec


class Tier(StrEnum):
    """The four difficulty tiers of TAROT's unit tests."""

    BASIC = "basic"
    INTERMEDIATE = "intermediate"
    COMPLEX = "complex"
    EDGE = "edge"


ALL_TIERS: tuple[Tier, ...] = (Tier.BASIC, Tier.INTERMEDIATE, Tier.COMPLEX, Tier.EDGE)


class TestCase(BaseModel):
    """One unit test.

    For `stdin_stdout` problems `input` is fed on stdin and `output` is the
    expected stdout. For `function` problems `input` is Python code (asserts
    calling the entry point) run after the program, and `output` is None.
    A test whose `tier` is None (e.g. the statement's example) carries no
    reward weight.
    """

    __test__ = False  # not a pytest class
    model_config = ConfigDict(frozen=True)

    input: str
    output: str | None = None
    tier: Tier | None = None
    reason: str = ""


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    statement: str = Field(min_length=1)
    gold_solution: str = Field(min_length=1, description="Python source, without a markdown fence.")
    language: str = "python"
    kind: ProgramKind = ProgramKind.STDIN_STDOUT
    entry_point: str | None = None
    checker_prelude: str | None = Field(
        default=None,
        description="function style: trusted code the checker runs before each test (a HumanEval prompt,"
        " so that the helpers its tests call, such as HumanEval/32's `poly`, are the prompt's, not the"
        " program's).",
    )
    tests: list[TestCase] = Field(min_length=1)
    source: str | None = None

    @model_validator(mode="after")
    def _function_problems_need_an_entry_point(self) -> Problem:
        if self.kind is ProgramKind.FUNCTION and not self.entry_point:
            raise ValueError("entry_point: required for function-style problems")
        return self

    def tests_in(self, tiers: frozenset[Tier] | None = None) -> list[tuple[int, TestCase]]:
        """(index, test) pairs of the tests in `tiers` (all tests when None)."""
        return [(i, t) for i, t in enumerate(self.tests) if tiers is None or t.tier in tiers]

    def execution_request(
        self,
        code: str,
        tests: list[TestCase] | None = None,
        *,
        time_limit_s: float = 5.0,
        memory_limit_mb: int = 512,
        float_tolerance: float | None = None,
    ) -> ExecutionRequest:
        """A sandbox request that runs `code` on `tests` (default: all of this problem's tests)."""
        chosen = self.tests if tests is None else tests
        return ExecutionRequest(
            code=code,
            kind=self.kind,
            entry_point=self.entry_point,
            checker_prelude=self.checker_prelude,
            tests=[TestSpec(input=t.input, output=t.output) for t in chosen],
            time_limit_s=time_limit_s,
            memory_limit_mb=memory_limit_mb,
            float_tolerance=float_tolerance,
        )
