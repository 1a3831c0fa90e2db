"""Every hostile program through `tarot score` and through the HTTP service: reward 0, nothing passed.

Both start real processes (the CLI, the service) on this machine; the
programs are the same as through the executor (redteam_programs.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from process_helpers import start_sandbox_service
from redteam_programs import (
    DROP_FUNCTION_ROUTES,
    DROP_ROUTE_TESTS,
    DROP_STDIN_ROUTES,
    FUNCTION_ATTACKS,
    STDIN_ATTACKS,
    double_problem,
    function_completion,
    secret_problem,
    stdin_completion,
)

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.rewards.tiered import score_batch
from tarot_jobs.sandbox.client import HttpSandbox
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, TestSpec

CLI = [sys.executable, "-c", "from tarot_jobs.cli import main; main()"]


def _completions(kind: str, places: dict[str, object]) -> list[tuple[str, str, str]]:
    """(attack name, problem id, completion) for every attack of `kind`: "function", "stdin", or "drop"
    (the routes known to have had a run dropped; the one that needs a test of its own is left to
    test_redteam_blame.py)."""
    if kind == "function":
        return [(name, "double", function_completion(name)) for name in sorted(FUNCTION_ATTACKS)]
    if kind == "drop":
        return [
            *(
                (name, "secret", f"```python\n{DROP_STDIN_ROUTES[name]}```")
                for name in sorted(DROP_STDIN_ROUTES)
            ),
            *(
                (name, "double", f"```python\n{DROP_FUNCTION_ROUTES[name]}```")
                for name in sorted(DROP_FUNCTION_ROUTES)
                if name not in DROP_ROUTE_TESTS
            ),
        ]
    return [(name, "secret", stdin_completion(name, **places)) for name in sorted(STDIN_ATTACKS)]


def _ready_for(kind: str, sandbox: LocalSandbox, require_isolation: Callable[..., None]) -> None:
    """The stdin attacks need the jail's root and the drop routes its own IPC namespace and scratch
    (skipped with the reason, or failed under TAROT_EXPECT_ISOLATION=full); the function attacks need no
    isolation at all."""
    if kind == "drop":
        sandbox.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])
        require_isolation(sandbox, "mnt", "ipc")
    if kind == "stdin":
        sandbox.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])
        require_isolation(sandbox, "mnt", "minimal-root", "pid", "net", "seccomp")


@pytest.mark.parametrize("kind", ["function", "stdin", "drop"])
def test_tarot_score_gives_every_attack_nothing(
    kind: str,
    tmp_path: Path,
    problems_file: Path,
    places: dict[str, object],
    sandbox: LocalSandbox,
    require_isolation: Callable[..., None],
) -> None:
    _ready_for(kind, sandbox, require_isolation)
    attacks = _completions(kind, places)
    completions = tmp_path / "completions.jsonl"
    completions.write_text(
        "".join(json.dumps({"problem_id": pid, "completion": text}) + "\n" for _, pid, text in attacks)
    )
    done = subprocess.run(
        [*CLI, "score", str(problems_file), str(completions), "--json", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(attacks)
    for (name, _, _), row in zip(attacks, rows, strict=True):
        assert row["sandbox_failed"] is False, name
        assert row["reward"] == 0.0, f"{name} earned {row['reward']}: {row['tests']}"
        assert all(test["status"] != "passed" for test in row["tests"]), name


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    process, url = start_sandbox_service("--workers", "2")
    yield url
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("kind", ["function", "stdin", "drop"])
def test_the_service_gives_every_attack_nothing(
    kind: str,
    service: str,
    token: str,
    places: dict[str, object],
    sandbox: LocalSandbox,
    require_isolation: Callable[..., None],
) -> None:
    health = httpx.get(f"{service}/healthz", timeout=10).json()
    print(f"service isolation: {health['isolation']}")
    _ready_for(kind, sandbox, require_isolation)
    assert_the_service_gives_nothing(service, kind, token, places)


def assert_the_service_gives_nothing(url: str, kind: str, token: str, places: dict[str, object]) -> None:
    """Every attack of `kind` scored through the sandbox service at `url`: reward 0, no test passed, and
    never a sandbox failure (a sample dropped instead of scored)."""
    attacks = _completions(kind, places)
    problems = {"double": double_problem(), "secret": secret_problem(token)}
    with HttpSandbox(url) as client:
        details = score_batch(
            [(problems[pid], text) for _, pid, text in attacks],
            get_policy("static").phases[0],
            client,
            time_limit_s=5.0,
        )
    for (name, _, _), detail in zip(attacks, details, strict=True):
        assert not detail.sandbox_failed, name
        assert detail.reward == 0.0, f"{name} earned {detail.reward}: {detail.verdict_counts()}"
        assert "passed" not in detail.verdict_counts(), name
