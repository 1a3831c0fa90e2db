"""The wire types of the sandbox: what is asked of it and what it answers.

These models are shared by the in-process executor, the HTTP service and its
client, so a request built by the rewards is the same object whichever
backend runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class ProgramKind(StrEnum):
    STDIN_STDOUT = "stdin_stdout"
    FUNCTION = "function"


class Verdict(StrEnum):
    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    RUNTIME_ERROR = "runtime_error"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_ERROR = "sandbox_error"
    COMPLETED = "completed"  # ran to completion; the test had no expected output


class TestSpec(BaseModel):
    """One test as the sandbox sees it.

    stdin_stdout: `input` is stdin, `output` the expected stdout (None: no check,
    verdict `completed`). function: `input` is Python code (asserts) run by a
    checker process that calls the program's `entry_point` (and any other name
    the test uses but does not define) through a channel, with plain data; an
    AssertionError is `wrong_answer`. The test code never enters the program's process.
    """

    __test__ = False
    model_config = ConfigDict(frozen=True)

    input: str = ""
    output: str | None = None


class ExecutionRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    kind: ProgramKind = ProgramKind.STDIN_STDOUT
    entry_point: str | None = None
    tests: list[TestSpec] = Field(min_length=1)
    time_limit_s: float = Field(default=5.0, gt=0, le=300)
    memory_limit_mb: int = Field(default=512, gt=0, le=65536)
    float_tolerance: float | None = Field(default=None, ge=0)
    checker_prelude: str | None = Field(
        default=None,
        description="function style: trusted code the checker runs before the tests (e.g. the helper"
        " functions of a HumanEval prompt that a test uses), so the program cannot redefine them.",
    )
    strip_lines: bool = Field(
        default=False,
        description="stdin/stdout parity with the TAROT reference: compare whole lines after strip(),"
        " ignoring leading spaces too (off by default: tarot trims only trailing whitespace).",
    )


class TestResult(BaseModel):
    __test__ = False

    status: Verdict
    exit_code: int | None = None
    signal: int | None = None
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    stdout: str = ""
    stderr: str = ""
    detail: str = ""


class ExecutionResult(BaseModel):
    results: list[TestResult]
    path: str = Field(
        description="Which execution path ran ('forkserver' or 'subprocess') and the isolation in effect,"
        " e.g. 'forkserver+jail(user,mnt,pid,net,ipc,uts)' or 'forkserver+pod-boundary(refused:user)'."
    )

    @property
    def mode(self) -> str:
        """'forkserver' or 'subprocess' (or 'remote' for a result the client made up)."""
        return self.path.split("+", 1)[0]

    @property
    def infrastructure_failed(self) -> bool:
        """True when any test failed for a reason that is not the program's fault."""
        return any(r.status is Verdict.SANDBOX_ERROR for r in self.results)


class SandboxUnavailable(RuntimeError):
    """The sandbox backend could not be reached or did not answer."""


class SandboxBackend(Protocol):
    """Anything that runs execution requests: the local executor or the HTTP client.

    A failure of the whole backend raises SandboxUnavailable; a failure of the
    infrastructure for one request is reported as `sandbox_error` verdicts in
    that request's result. Neither is ever a wrong answer.
    """

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]: ...
