"""A stage's sandbox usage: which backend scored how many tests, matched against the service's own counter,
and carried from phase.json through the train Job's result into the status schema."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator

import httpx
import pytest
from process_helpers import start_sandbox_service

from tarot_jobs.lifecycle.results import SandboxServiceResult, TrainResult, train_result
from tarot_jobs.pipeline.sandbox_usage import CountingSandbox
from tarot_jobs.sandbox.client import HttpSandbox
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, SandboxUnavailable, TestSpec
from tarot_jobs.spec.crd import crd
from tarot_jobs.spec.status import PhaseStatus

ADD = "a, b = map(int, input().split())\nprint(a + b)"
CLI = [sys.executable, "-c", "from tarot_jobs.cli import main; main()"]


def requests(*test_counts: int) -> list[ExecutionRequest]:
    return [
        ExecutionRequest(code=ADD, tests=[TestSpec(input=f"{i} 1", output=str(i + 1)) for i in range(n)])
        for n in test_counts
    ]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tarot sandbox serve` on a free loopback port. When it stops (SIGTERM, as a pod's kubelet stops
    it), its result file (a pod's termination message) holds what its counter said last."""
    summary = tmp_path_factory.mktemp("service") / "termination-log"
    process, url = start_sandbox_service(
        "--workers", "1", env={**os.environ, "TAROT_RESULT_FILE": str(summary)}
    )
    yield url
    counted = _by_verdict(url)
    assert not summary.exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert SandboxServiceResult.model_validate_json(summary.read_text()).executions == counted
    assert sum(counted.values()) >= 6  # the tests of test_tests_scored_through_the_service_match_its_counter


def _by_verdict(url: str) -> dict[str, int]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.findall(r'^tarot_sandbox_executions_total\{verdict="([^"]+)"\} (\S+)$', text, re.M)
    return {verdict: int(float(value)) for verdict, value in found if float(value)}  # verdicts seen


def executions(url: str) -> float:
    """The service's own count of executed tests (every verdict)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^tarot_sandbox_executions_total\{[^}]*\} (\S+)$", text, re.M))


def test_tests_scored_through_the_service_match_its_counter(service: str) -> None:
    before = executions(service)
    with HttpSandbox(service) as client:
        counted = CountingSandbox(client)
        counted.run_batch(requests(3, 1))
        counted.run_batch(requests(2))
    usage = counted.usage()
    assert (usage.backend, usage.scored_tests) == (service, 6)
    assert executions(service) - before == usage.scored_tests
    # A stage counting inside a command's count (train: one count per phase) still names the service.
    with HttpSandbox(service) as client:
        phase = CountingSandbox(CountingSandbox(client))
        phase.run_batch(requests(1))
    assert phase.usage().backend == service


def test_in_process_backend_is_named_in_process() -> None:
    with LocalSandbox(1) as local:
        counted = CountingSandbox(local)
        [result] = counted.run_batch(requests(2))
    assert [r.status.value for r in result.results] == ["passed", "passed"]
    assert counted.usage().model_dump(by_alias=True) == {"backend": "in-process", "scoredTests": 2}


def test_a_backend_that_never_answered_scored_nothing() -> None:
    counted = CountingSandbox(HttpSandbox("http://127.0.0.1:9", retries=0, connect_timeout_s=1))
    with pytest.raises(SandboxUnavailable):
        counted.run_batch(requests(4))
    assert counted.usage().scored_tests == 0


SUMMARY = {
    "index": 0,
    "steps": 5,
    "step_offset": 0,
    "global_step": 5,
    "mean_reward": 0.25,
    "final": "/workspace/train/phase-0/final",
    "sandbox": {"backend": "http://r1-sandbox.ns.svc:8080", "scored_tests": 120},
}


def test_the_train_result_carries_the_phase_summarys_sandbox_in_camel_case() -> None:
    result = train_result(SUMMARY).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert result["sandbox"] == {"backend": "http://r1-sandbox.ns.svc:8080", "scoredTests": 120}
    assert TrainResult.model_validate(result).sandbox == train_result(SUMMARY).sandbox
    older = {k: v for k, v in SUMMARY.items() if k != "sandbox"}
    assert "sandbox" not in train_result(older).model_dump(by_alias=True, exclude_none=True)


def test_a_phases_status_and_the_crd_hold_the_sandbox_usage() -> None:
    usage = train_result(SUMMARY).sandbox
    phase = PhaseStatus(index=0, tiers=["basic"], steps=5, sandbox=usage)
    assert phase.model_dump(by_alias=True, exclude_none=True)["sandbox"]["scoredTests"] == 120
    [version] = crd()["spec"]["versions"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    phases = status["properties"]["curriculum"]["properties"]["phases"]["items"]
    schema = phases["properties"]["sandbox"]
    assert set(schema["required"]) == {"backend", "scoredTests"}
    assert schema["properties"]["scoredTests"]["minimum"] == 0
    with pytest.raises(ValueError, match=r"scored_?[tT]ests"):
        TrainResult.model_validate(
            {**train_result(SUMMARY).model_dump(), "sandbox": {"backend": "x", "scoredTests": -1}}
        )
