"""A sandbox that cannot run programs says so, instead of turning every test into a sandbox error.

* At start: `tarot sandbox serve` self-tests (a stdin/stdout and a function-style program that must pass)
  and exits 3 with the reason; `backend_for` does the same for the local executor (SandboxUnavailable,
  exit status 3 in the CLI). The jail here is really broken: a package to show that does not exist, so
  every helper (warm or one-shot) fails to build its root.
* Later: after FAILING_AFTER sandbox errors in a row (here the program helper is killed from outside
  while it runs a program, three times), /healthz answers 503 `failing` with the last error; one run
  carried out makes it 200 `ok` again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from process_helpers import processes_named

from tarot_jobs.sandbox import client, pool
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.pool import FAILING_AFTER, JailOptions
from tarot_jobs.sandbox.service import SELF_TEST_FAILED_EXIT, SandboxService, serve
from tarot_jobs.sandbox.types import ExecutionRequest, SandboxUnavailable, TestSpec, Verdict


@dataclass(frozen=True)
class BrokenJail(JailOptions):
    """Asks every helper to show a package that is not there: building the jail's root fails."""

    def arguments(self) -> list[str]:
        return [*super().arguments(), "--package", "gone=/nonexistent/tarot-gone"]


def test_the_service_exits_3_with_the_reason_when_its_self_test_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        asyncio.run(serve("127.0.0.1", 0, 1, jail=BrokenJail(), on_ready=lambda line: None))
    assert stopped.value.code == SELF_TEST_FAILED_EXIT == 3
    said = capsys.readouterr().err
    assert "not serving: the sandbox self-test" in said, said
    # The reason, from the helper that failed.
    assert "building the sandbox jail failed" in said and "mount /nonexistent/tarot-gone on" in said, said


def test_a_local_executor_that_cannot_run_programs_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool.JailOptions, "from_environment", classmethod(lambda cls: BrokenJail()))
    with pytest.raises(SandboxUnavailable, match="cannot run programs here: the sandbox self-test"):
        client.backend_for(None, 1)


def test_a_working_local_executor_passes_its_self_test() -> None:
    backend = client.backend_for(None, 1)
    assert isinstance(backend, LocalSandbox)
    try:
        assert backend.self_test() is None
    finally:
        backend.close()


async def _health(backend: LocalSandbox) -> tuple[int, dict[str, Any]]:
    async with TestClient(TestServer(SandboxService(backend).app)) as http:
        response = await http.get("/healthz")
        return response.status, await response.json()


def _kill_the_helper_while_it_runs(backend: LocalSandbox) -> Verdict:
    marker = "thf" + uuid.uuid4().hex[:12]
    spin = f"import ctypes\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\nwhile True:\n    pass\n"
    running = backend.submit(ExecutionRequest(code=spin, tests=[TestSpec()], time_limit_s=60))
    deadline = time.monotonic() + 60
    while not processes_named(marker):  # the barrier: the program runs on the helper now
        assert time.monotonic() < deadline and not running.done(), "the program never ran"
        time.sleep(0.02)
    os.kill(backend.capabilities["pid"], signal.SIGKILL)  # the launcher: its jail dies with it
    return running.result(timeout=60).results[0].status


def test_healthz_answers_503_failing_after_sandbox_errors_in_a_row() -> None:
    honest = ExecutionRequest(code="print(2)", tests=[TestSpec(output="2")])
    with LocalSandbox(1) as backend:
        assert backend.run_batch([honest])[0].results[0].status is Verdict.PASSED
        for failures in range(1, FAILING_AFTER + 1):
            assert _kill_the_helper_while_it_runs(backend) is Verdict.SANDBOX_ERROR
            status, health = asyncio.run(_health(backend))
            if failures < FAILING_AFTER:
                assert (status, health["status"], health["failing"]) == (200, "ok", None), health
        assert (status, health["status"]) == (503, "failing"), health
        assert "sandbox helper failed" in health["failing"], health
        # The helpers themselves are fine (each was replaced): one run carried out, and it is ok again.
        assert backend.run_batch([honest])[0].results[0].status is Verdict.PASSED
        status, health = asyncio.run(_health(backend))
        assert (status, health["status"], health["failing"]) == (200, "ok", None), health
