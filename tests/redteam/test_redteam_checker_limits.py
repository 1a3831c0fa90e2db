"""Program data that would stall or crash the checker while it is decoded: the program's failure, quickly.

Each program forges its reply on the call socket (redteam_programs.FORGE) with a value that is plain data
but costly to build in C, where the checker's deadline (SIGALRM) cannot fire: a set or dict of 30000 ints
sharing one hash, a Fraction of two ~2-million-bit ints, a tuple nested 160000 deep inside a frozenset
(hashing it overflows the C stack). Before the decoder's limits these took ~5 s of uninterruptible C per
test, or killed the checker so that the sample was dropped as a sandbox error.
"""

from __future__ import annotations

import time

import pytest
from redteam_programs import FUNCTION_ATTACKS, double_problem

from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import Verdict

TIME_LIMIT_S = 5.0
LIMIT_ATTACKS = sorted(name for name in FUNCTION_ATTACKS if name.startswith("checker_"))


def test_every_checker_attack_is_here() -> None:
    assert LIMIT_ATTACKS == [
        "checker_colliding_dict",
        "checker_colliding_set",
        "checker_deep_tuple",
        "checker_huge_fraction",
    ]


@pytest.mark.parametrize("name", LIMIT_ATTACKS)
def test_data_over_the_limits_fails_the_program_well_inside_the_time_limit(
    sandbox: LocalSandbox, name: str
) -> None:
    request = double_problem().execution_request(FUNCTION_ATTACKS[name], time_limit_s=TIME_LIMIT_S)
    started = time.monotonic()
    [result] = sandbox.run_batch([request])
    elapsed = time.monotonic() - started
    for outcome in result.results:
        assert outcome.status is Verdict.RUNTIME_ERROR, outcome
        assert "over the checker's limits" in outcome.detail, outcome.detail
    # All four tests (two per worker) together take less than one test's time limit.
    assert elapsed < TIME_LIMIT_S, f"{name}: {elapsed:.2f} s"
