"""Which sandbox scored a stage, and how many tests: the `sandbox` of every stage's result.

`open_sandbox` (context.py) hands each stage command a `CountingSandbox`, whose `usage()` goes into the
stage's result; the train stage also counts each phase on its own (phase.json, the run's status). On a
cluster the backend is the run's sandbox Service, whose own counter (`tarot_sandbox_executions_total`)
rises by the same number of tests, so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from tarot_jobs.sandbox.client import HttpSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, SandboxBackend
from tarot_jobs.spec.status import IN_PROCESS_SANDBOX, SandboxUsage


def backend_name(backend: SandboxBackend) -> str:
    """The service URL of an HTTP backend; "in-process" for the executor in this process."""
    if isinstance(backend, CountingSandbox):  # a stage's own count around the command's
        return backend_name(backend.backend)
    if isinstance(backend, HttpSandbox):
        return backend.base_url
    return IN_PROCESS_SANDBOX


class CountingSandbox:
    """A `SandboxBackend` that counts the tests of the requests its backend answered."""

    def __init__(self, backend: SandboxBackend) -> None:
        self.backend = backend
        self.scored_tests = 0

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        results = self.backend.run_batch(requests)  # a failure raises: nothing was scored
        self.scored_tests += sum(len(request.tests) for request in requests)
        return results

    def usage(self) -> SandboxUsage:
        return SandboxUsage(backend=backend_name(self.backend), scored_tests=self.scored_tests)
