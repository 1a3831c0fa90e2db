"""Blame by cause: no wrong program can get itself dropped (`sandbox_error`) instead of scored 0.

Table-driven over every route known to have dropped a run: an uncleanable or broken scratch, a
checker crashed or stalled by the program's data (values over the decoder's limits, and a value within
them on which the test's own C code stalls past the checker's deadline), set-up markers and exit codes
that imitate the sandbox's. Each must be the program's failure (nothing passed, no sandbox error), and
the honest program run right after on the same helpers must pass. Where the verdict is certain it is
asserted too (EXPECTED).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redteam_programs import DROP_FUNCTION_ROUTES as FUNCTION_ROUTES
from redteam_programs import DROP_ROUTE_TESTS as ROUTE_TESTS
from redteam_programs import DROP_STDIN_ROUTES as STDIN_ROUTES

from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, ProgramKind, TestSpec, Verdict

EXPECTED = {
    "checker_stalled_by_the_test": (Verdict.TIMEOUT, "limit"),
    "chmod_scratch_000": (Verdict.WRONG_ANSWER, ""),  # its scratch is made fresh again
    "kill_self": (Verdict.RUNTIME_ERROR, "SIGKILL"),
    "setup_marker": (Verdict.RUNTIME_ERROR, "exit code 125"),
}
HONEST_STDIN = ExecutionRequest(code="print(int(input()) * 2)", tests=[TestSpec(input="2", output="4")])
HONEST_FUNCTION = ExecutionRequest(
    code="def double(x):\n    return 2 * x\n",
    kind=ProgramKind.FUNCTION,
    entry_point="double",
    tests=[TestSpec(input="assert double(2) == 4")],
)


@pytest.fixture(scope="module")
def one_pair() -> Iterator[LocalSandbox]:
    with LocalSandbox(1) as backend:
        backend.run_batch([HONEST_STDIN])
        yield backend


def _route_request(route: str) -> ExecutionRequest:
    if route in STDIN_ROUTES:
        return ExecutionRequest(
            code=STDIN_ROUTES[route], tests=[TestSpec(input="2", output="4")], time_limit_s=5
        )
    tests = [TestSpec(input=ROUTE_TESTS.get(route, "assert double(2) == 4"))]
    return HONEST_FUNCTION.model_copy(
        update={"code": FUNCTION_ROUTES[route], "tests": tests, "time_limit_s": 2.0}
    )


@pytest.mark.parametrize("route", sorted(STDIN_ROUTES) + sorted(FUNCTION_ROUTES))
def test_a_wrong_program_cannot_get_itself_dropped(
    one_pair: LocalSandbox, require_isolation: Callable[..., None], route: str
) -> None:
    require_isolation(one_pair, "mnt", "ipc")
    [result] = one_pair.run_batch([_route_request(route)])
    test = result.results[0]
    assert test.status is not Verdict.SANDBOX_ERROR, test.detail
    assert not result.infrastructure_failed and test.status is not Verdict.PASSED, test
    if route in EXPECTED:
        status, words = EXPECTED[route]
        assert test.status is status and words in test.detail, test
    # The helpers it may have broken were replaced: honest programs after it pass.
    [stdin, function] = one_pair.run_batch([HONEST_STDIN, HONEST_FUNCTION])
    assert stdin.results[0].status is Verdict.PASSED, stdin.results[0].detail
    assert function.results[0].status is Verdict.PASSED, function.results[0].detail


def test_compiling_a_huge_program_counts_against_its_own_limits(one_pair: LocalSandbox) -> None:
    """Compiling these 4 MB of source takes seconds and ~1.4 GB. Done in the helper (as it was for every
    program), no limit of the run applied: the program passed, and a larger one outlasted the helper's reply
    deadline (a sandbox error). A program over 64 KiB is compiled in its own child, under its own limits."""
    code = "x = 1\n" * 1_000_000 + "print(int(input()) * 2)\n"
    request = HONEST_STDIN.model_copy(update={"code": code, "memory_limit_mb": 512, "time_limit_s": 5.0})
    [result] = one_pair.run_batch([request])
    test = result.results[0]
    assert test.status in (Verdict.MEMORY_LIMIT, Verdict.TIMEOUT), test
    [honest] = one_pair.run_batch([HONEST_STDIN])
    assert honest.results[0].status is Verdict.PASSED, honest.results[0]
