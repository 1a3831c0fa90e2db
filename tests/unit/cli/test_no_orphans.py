"""Stopping a tarot command that runs programs leaves no sandbox process behind.

Each command runs as a real process on programs that never end (one stdin program spinning, one function
that spins while the checker waits for it); once they run, the command gets SIGTERM, SIGINT or SIGKILL and
every process of its tree (helpers' launchers, jailed helpers, checkers, programs) must be gone soon after.
SIGKILL runs no handler: each helper's launcher dies with the process that started it (parent-death
signal), and each jail with its launcher.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from process_helpers import processes_named, start_sandbox_service

from tarot_jobs.problems.loaders import save_problems
from tarot_jobs.problems.model import Problem, TestCase
from tarot_jobs.sandbox.types import ExecutionRequest, ProgramKind, TestSpec

CLI = [sys.executable, "-c", "from tarot_jobs.cli import main; main()"]


def spinner(marker: str) -> str:
    return f"import ctypes\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\nwhile True:\n    pass\n"


def function_spinner(marker: str) -> str:
    name = f"    ctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\n"
    return f"import ctypes\ndef f(x):\n{name}    while True:\n        pass\n"


def checker_staller(marker: str) -> str:
    """`g` answers the checker's call with 200000 ints sharing one hash (plain data within every limit), then
    names itself and spins. The test's set() of them is ~2e10 comparisons in C: a checker busy for minutes,
    deaf to its socket, that only a signal ends (once the marker shows, the answer is in its socket)."""
    return (
        "import ctypes, json, os, socket, struct\n"
        "def g(x):\n"
        "    tokens = [t for k in range(1, 200001) for t in ('i', hex(k * ((1 << 61) - 1) + 1))]\n"
        "    body = json.dumps({'id': 1, 'value': tokens + ['l', 200000]}).encode()\n"
        "    socket.socket(fileno=os.dup(3)).sendall(struct.pack('>I', len(body)) + body)\n"
        f"    ctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\n"
        "    while True:\n"
        "        pass\n"
    )


def tree(pid: int) -> set[int]:
    """`pid` and all its descendants (host pids, whatever namespace they are in)."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):  # the task may have ended
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def stop_and_check(
    process: subprocess.Popen[str], markers: list[str], sig: signal.Signals, exit_s: float
) -> None:
    try:
        wait_until(lambda: all(processes_named(m) for m in markers), 60, f"the programs {markers} never ran")
    except AssertionError:
        process.kill()  # its helpers die with it (parent-death signal)
        raise
    everything = tree(process.pid)
    assert len(everything) >= 4, everything  # the command, helpers, programs
    process.send_signal(sig)
    started = time.monotonic()
    process.wait(timeout=exit_s + 30)
    stopped = time.monotonic() - started
    assert stopped < exit_s, f"the command took {stopped:.1f} s to stop"
    wait_until(
        lambda: not any(map(alive, everything)), 10, "left behind: " + str(sorted(filter(alive, everything)))
    )


@pytest.fixture
def markers() -> list[str]:
    return ["tno" + uuid.uuid4().hex[:12] for _ in range(3)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=lambda sig: sig.name)
def test_stopping_tarot_score_leaves_nothing(tmp_path: Path, markers: list[str], sig: signal.Signals) -> None:
    problems, completions = tmp_path / "problems.jsonl", tmp_path / "completions.jsonl"
    save_problems(
        [
            Problem(
                id="spin", statement="s", gold_solution="print(1)", tests=[TestCase(input="", output="1")]
            ),
            *(
                Problem(
                    id=name,
                    statement="s",
                    gold_solution=f"def {name}(x):\n    return {returned}\n",
                    kind=ProgramKind.FUNCTION,
                    entry_point=name,
                    tests=[TestCase(input=check)],
                )
                for name, returned, check in (
                    ("f", "x", "assert f(1) == 1"),
                    ("g", "[x]", "assert set(g(1)) == {1}"),
                )
            ),
        ],
        problems,
    )
    programs = (
        ("spin", spinner(markers[0])),
        ("f", function_spinner(markers[1])),
        ("g", checker_staller(markers[2])),
    )
    completions.write_text(
        "".join(
            json.dumps({"problem_id": pid, "completion": f"```python\n{code}```"}) + "\n"
            for pid, code in programs
        )
    )
    command = [*CLI, "score", problems, completions, "--workers", "3", "--time-limit", "120"]
    process = subprocess.Popen(
        list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stop_and_check(process, markers, sig, exit_s=5)
    if sig is signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 128 + sig
        assert process.stderr is not None and f"stopped by {sig.name}" in process.stderr.read()


def test_sigint_to_tarot_sandbox_exec_leaves_nothing(tmp_path: Path, markers: list[str]) -> None:
    program, tests = tmp_path / "p.py", tmp_path / "tests.py"
    program.write_text(function_spinner(markers[0]))
    tests.write_text("assert f(1) == 1\n")
    command = [*CLI, "sandbox", "exec", program, "--tests", tests, "--timeout", "120"]
    process = subprocess.Popen(list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop_and_check(process, markers[:1], signal.SIGINT, exit_s=5)
    assert process.returncode == 128 + signal.SIGINT


def test_sigterm_to_tarot_sandbox_serve_leaves_nothing(markers: list[str]) -> None:
    """The service stops gracefully: it finishes the run in flight (at its time limit), then closes."""
    process, url = start_sandbox_service("--workers", "2")
    requests = [
        ExecutionRequest(code=spinner(markers[0]), tests=[TestSpec()], time_limit_s=4),
        ExecutionRequest(
            code=function_spinner(markers[1]),
            kind=ProgramKind.FUNCTION,
            entry_point="f",
            tests=[TestSpec(input="assert f(1) == 1")],
            time_limit_s=4,
        ),
    ]
    body = {"requests": [r.model_dump(mode="json") for r in requests]}
    client = threading.Thread(
        target=lambda: httpx.post(f"{url}/v1/execute/batch", json=body, timeout=60), daemon=True
    )
    client.start()
    stop_and_check(process, markers[:2], signal.SIGTERM, exit_s=20)
    assert process.returncode == 0
