"""The HTTP service as a real process on 127.0.0.1, driven by httpx and by HttpSandbox."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from process_helpers import start_sandbox_service as start_service

from tarot_jobs.sandbox.client import HttpSandbox, backend_for
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, SandboxUnavailable, TestSpec, Verdict

CLI = [sys.executable, "-c", "from tarot_jobs.cli import main; main()"]


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    process, url = start_service("--workers", "2", "--max-queued", "8", "--max-code-kb", "4")
    yield url
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def request(code: str, *tests: tuple[str, str | None], time_limit_s: float = 5.0) -> ExecutionRequest:
    return ExecutionRequest(
        code=code, tests=[TestSpec(input=i, output=o) for i, o in tests], time_limit_s=time_limit_s
    )


ADD = "a, b = map(int, input().split())\nprint(a + b)"


def test_execute_one_program(service: str) -> None:
    body = request(ADD, ("1 2", "3"), ("2 2", "5")).model_dump(mode="json")
    response = httpx.post(f"{service}/v1/execute", json=body, timeout=30)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["passed", "wrong_answer"]
    assert {"status", "stdout", "stderr", "exit_code", "wall_ms"} <= set(results[0])
    assert results[0]["stdout"] == "3\n" and results[0]["exit_code"] == 0


def test_batch_through_the_client(service: str) -> None:
    programs = [
        request(ADD, ("1 2", "3")),
        request("print(1/0)", ("", "1")),
        request("while True: pass", ("", None), time_limit_s=0.5),
    ] * 3
    with HttpSandbox(service, batch_size=4) as client:
        results = client.run_batch(programs)
    assert [r.results[0].status for r in results] == [
        Verdict.PASSED,
        Verdict.RUNTIME_ERROR,
        Verdict.TIMEOUT,
    ] * 3
    assert all(r.mode == "forkserver" for r in results)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tests": [{"input": ""}]}, "code"),
        ({"code": "print(1)", "tests": []}, "tests"),
        ({"code": "print(1)", "tests": [{"input": 5}]}, "tests.0.input"),
        ({"code": "print(1)", "tests": [{}], "time_limit_s": -1}, "time_limit_s"),
    ],
)
def test_malformed_requests_name_the_field(service: str, body: dict[str, object], field: str) -> None:
    response = httpx.post(f"{service}/v1/execute", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:")
    batch = httpx.post(f"{service}/v1/execute/batch", json={"requests": [{"code": "", "tests": [{}]}, body]})
    assert batch.status_code == 400 and batch.json()["error"].startswith(f"requests.1.{field}:")


def test_invalid_json_and_oversized_requests(service: str) -> None:
    response = httpx.post(f"{service}/v1/execute", content=b"{not json", timeout=10)
    assert response.status_code == 400 and response.json()["error"].startswith("body:")
    huge = request("x = 1\n" * 2000, ("", None)).model_dump(mode="json")
    response = httpx.post(f"{service}/v1/execute", json=huge, timeout=10)
    assert response.status_code == 413 and response.json()["error"].startswith("code:")
    # Through the client, only the oversized program fails, as an infrastructure failure.
    with HttpSandbox(service) as client:
        small, big = client.run_batch([request(ADD, ("1 2", "3")), request("x = 1\n" * 2000, ("", None))])
    assert small.results[0].status is Verdict.PASSED
    assert big.infrastructure_failed


def test_overload_is_refused_at_once_with_retry_after(service: str) -> None:
    program = request("print(1)", ("", "1"))
    nine = {"requests": [program.model_dump(mode="json")] * 9}
    started = time.monotonic()
    response = httpx.post(f"{service}/v1/execute/batch", json=nine, timeout=10)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    # Refused at once: not held for even one program's time limit, let alone a queue of them.
    assert time.monotonic() - started < program.time_limit_s
    with (
        HttpSandbox(service, retries=1, backoff_s=0.01, max_backoff_s=0.05) as client,
        pytest.raises(SandboxUnavailable, match="HTTP 429"),
    ):
        client.run_batch([request("print(1)", ("", "1"))] * 9)


def test_client_retries_until_the_queue_drains(service: str) -> None:
    # 8 sleepers: 4 take the service's slots (2 run, 2 wait for a helper), 4 stay queued until the first
    # ends, 2 s later; while 3 or more are queued, a batch of 6 overflows max-queued 8 and is refused.
    sleeper = request("import time\ntime.sleep(2)\nprint(1)", ("", "1")).model_dump(mode="json")

    async def queued(http: httpx.AsyncClient) -> int:
        return int((await http.get(f"{service}/healthz")).json()["queued"])

    async def scenario() -> tuple[int, list[Verdict]]:
        async with httpx.AsyncClient(timeout=30) as http:
            filler = asyncio.create_task(
                http.post(f"{service}/v1/execute/batch", json={"requests": [sleeper] * 8})
            )
            async with asyncio.timeout(20):  # the filler admitted: its queued half waits for a slot
                while await queued(http) < 4:
                    await asyncio.sleep(0.02)
            client = HttpSandbox(service, backoff_s=0.05)
            results = await client.run_batch_async([request("print(2)", ("", "2"))] * 6)
            return (await filler).status_code, [r.results[0].status for r in results]

    refused_before = overloaded_refusals(service)
    filler_status, statuses = asyncio.run(scenario())
    assert filler_status == 200
    assert statuses == [Verdict.PASSED] * 6
    assert overloaded_refusals(service) > refused_before  # it was refused, then got through


def overloaded_refusals(service: str) -> float:
    text = httpx.get(f"{service}/metrics", timeout=10).text
    found = re.search(r'^tarot_sandbox_rejected_requests_total\{reason="overloaded"\} (\S+)$', text, re.M)
    assert found
    return float(found.group(1))


def metric(service: str, name: str) -> float:
    text = httpx.get(f"{service}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


def test_health_and_metrics(service: str) -> None:
    health = httpx.get(f"{service}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["workers"] == 2
    assert health.json()["isolation_detail"]["seccomp"] is True
    # The isolation in effect, as every result's path carries it (a jail, or what was refused).
    label = health.json()["isolation"]
    assert label.startswith(("jail(", "pod-boundary(")), label
    assert health.json()["status"] == "ok"
    malformed = 'tarot_sandbox_rejected_requests_total{reason="malformed"}'
    passed = 'tarot_sandbox_executions_total{verdict="passed"}'
    malformed_before, passed_before = metric(service, malformed), metric(service, passed)
    httpx.post(f"{service}/v1/execute", json=request(ADD, ("1 2", "3")).model_dump(mode="json"), timeout=30)
    assert httpx.post(f"{service}/v1/execute", content=b"{not json", timeout=10).status_code == 400
    metrics = httpx.get(f"{service}/metrics", timeout=10)
    assert metrics.headers["content-type"].startswith("text/plain")

    def value(name: str) -> float:
        return metric(service, name)

    assert value(passed) == passed_before + 1
    assert value(malformed) == malformed_before + 1
    assert value("tarot_sandbox_program_latency_seconds_count") >= 1
    assert value('tarot_sandbox_test_wall_seconds_bucket{le="+Inf"}') >= 1
    assert value("tarot_sandbox_queue_depth") == 0
    assert value("tarot_sandbox_inflight") == 0


def test_unreachable_service_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here
    started = time.monotonic()
    with (
        HttpSandbox(f"http://127.0.0.1:{port}", retries=2, backoff_s=0.01) as client,
        pytest.raises(SandboxUnavailable, match=rf"127\.0\.0\.1:{port} unavailable after 3 attempts"),
    ):
        bound = 3 * client.connect_timeout_s + sum(client.backoff_s * 2**i for i in range(3))
        client.run_batch([request("print(1)", ("", "1"))])
    # Bounded by the client's own settings: three connection attempts and their backoffs.
    assert time.monotonic() - started < bound


def test_backend_for_picks_local_or_http() -> None:
    local = backend_for(None, workers=1)
    assert isinstance(local, LocalSandbox)
    local.close()
    remote = backend_for("http://sandbox:8080/")
    assert isinstance(remote, HttpSandbox) and remote.base_url == "http://sandbox:8080"


def test_exec_command(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("print(sum(map(int, input().split())))\n")
    (tmp_path / "in.txt").write_text("1 2 3\n")
    (tmp_path / "out.txt").write_text("6\n")
    (tmp_path / "bad.txt").write_text("7\n")
    base = [*CLI, "sandbox", "exec", str(program), "--stdin", str(tmp_path / "in.txt")]
    passed = subprocess.run(
        [*base, "--expect", str(tmp_path / "out.txt"), "--json"], capture_output=True, text=True
    )
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["results"][0]["status"] == "passed"
    wrong = subprocess.run([*base, "--expect", str(tmp_path / "bad.txt")], capture_output=True, text=True)
    assert wrong.returncode == 1 and "wrong_answer" in wrong.stdout
    program.write_text("while True: pass\n")
    slow = subprocess.run([*base, "--timeout", "0.3", "--json"], capture_output=True, text=True)
    assert slow.returncode == 1 and json.loads(slow.stdout)["results"][0]["status"] == "timeout"
    missing = subprocess.run([*base, "--expect", str(tmp_path / "nope.txt")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.txt" in missing.stderr


def test_every_too_large_path_is_413_naming_the_field(service: str) -> None:
    """The service was started with --max-code-kb 4; inputs over --max-input-mb (8) and batches over
    512 programs are refused the same way, each naming what was too large."""
    big_input = request("print(1)", ("x" * ((8 << 20) + 1), None)).model_dump(mode="json")
    response = httpx.post(f"{service}/v1/execute", json=big_input, timeout=30)
    assert response.status_code == 413 and response.json()["error"].startswith("tests.0.input:")
    one = request("print(1)", ("", "1")).model_dump(mode="json")
    response = httpx.post(f"{service}/v1/execute/batch", json={"requests": [one] * 513}, timeout=30)
    assert response.status_code == 413 and response.json()["error"].startswith("requests: 513 programs")
    big_code = request("x = 1\n" * 2000, ("", None)).model_dump(mode="json")
    response = httpx.post(f"{service}/v1/execute/batch", json={"requests": [one, big_code]}, timeout=30)
    assert response.status_code == 413 and response.json()["error"].startswith("requests.1.code:")
    metrics = httpx.get(f"{service}/metrics", timeout=10).text
    refused = re.search(r'^tarot_sandbox_rejected_requests_total\{reason="too_large"\} (\S+)$', metrics, re.M)
    assert refused and float(refused.group(1)) >= 3


async def test_a_body_over_the_limit_is_413() -> None:
    """The body limit (64 MiB by default) is the aiohttp server's own; a small one shows the path."""
    from aiohttp.test_utils import TestClient, TestServer

    from tarot_jobs.sandbox.service import SandboxService, ServiceConfig

    with LocalSandbox(1) as backend:
        service = SandboxService(backend, ServiceConfig(max_body_bytes=1024))
        async with TestClient(TestServer(service.app)) as client:
            body = {"requests": [request("print(1)", ("y" * 2048, "1")).model_dump(mode="json")]}
            response = await client.post("/v1/execute/batch", json=body)
            assert response.status == 413
            assert (await response.json())["error"].startswith("body: larger than 1024 bytes")
