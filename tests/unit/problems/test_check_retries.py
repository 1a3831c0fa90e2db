"""`tarot data check` runs a test again when the sandbox failed on it, as the reward does.

The failure is real: the program helper is killed from outside while the gold solution runs, which the
pool reports as `sandbox_error` and answers by starting a fresh helper.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from process_helpers import processes_named

from tarot_jobs.problems.check import CheckReport, check_problems
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, TestSpec


@pytest.mark.parametrize(("retries", "errors"), [(2, 0), (0, 1)])
def test_a_test_the_sandbox_failed_on_is_checked_again(retries: int, errors: int) -> None:
    marker = "tcr" + uuid.uuid4().hex[:12]
    gold = (
        f"import ctypes, time\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\ntime.sleep(0.3)\nprint(1)\n"
    )
    problem = Problem(
        id="p", statement="s", gold_solution=gold, tests=[TestCase(input="", output="1\n", tier=Tier.BASIC)]
    )
    reports: list[CheckReport] = []
    with LocalSandbox(1) as sandbox:
        sandbox.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])
        helper = sandbox.capabilities["pid"]
        checking = threading.Thread(
            target=lambda: reports.append(
                check_problems([problem], sandbox, require_all_tiers=False, retries=retries)
            )
        )
        checking.start()
        deadline = time.monotonic() + 30
        while not processes_named(marker):  # the gold solution runs on the helper now
            assert time.monotonic() < deadline, "the gold solution never ran"
            time.sleep(0.01)
        os.kill(helper, signal.SIGKILL)
        checking.join(timeout=60)
    [report] = reports
    assert len(report.infrastructure_errors) == errors, report.infrastructure_errors
    assert report.usable_problems == 1 - errors
