"""Hostile programs through the local executor and the tiered reward: reward 0, nothing `passed`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable

import pytest
from process_helpers import processes_named
from redteam_programs import (
    FUNCTION_ATTACKS,
    STDIN_ATTACKS,
    STDIN_SEES,
    double_problem,
    function_completion,
    secret_problem,
    stdin_completion,
    stdin_program,
)

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.rewards.tiered import RewardDetail, score_batch
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, ProgramKind, TestSpec, Verdict

ALL_TIERS = get_policy("static").phases[0]
TIME_LIMIT_S = 2.0


def assert_earns_nothing(detail: RewardDetail, name: str) -> None:
    assert detail.code_found, name
    assert not detail.sandbox_failed, f"{name} passed its failure off as the sandbox's: {detail}"
    assert detail.reward == 0.0, f"{name} earned {detail.reward}: {detail.verdict_counts()}"
    assert "passed" not in detail.verdict_counts(), name


def test_the_problems_are_solvable(sandbox: LocalSandbox, token: str) -> None:
    """Reward 0 below means something: the honest programs earn everything."""
    double, secret = double_problem(), secret_problem(token)
    details = score_batch(
        [
            (double, f"```python\n{double.gold_solution}```"),
            (secret, f"```python\n{secret.gold_solution}```"),
        ],
        ALL_TIERS,
        sandbox,
        time_limit_s=TIME_LIMIT_S,
    )
    assert [d.reward for d in details] == [1.0, 1.0], details


@pytest.mark.parametrize("name", sorted(FUNCTION_ATTACKS))
def test_function_style_tricks_earn_nothing(sandbox: LocalSandbox, name: str) -> None:
    [detail] = score_batch(
        [(double_problem(), function_completion(name))], ALL_TIERS, sandbox, time_limit_s=TIME_LIMIT_S
    )
    assert_earns_nothing(detail, name)


@pytest.mark.parametrize("name", sorted(STDIN_ATTACKS))
def test_stdin_programs_cannot_find_the_answers(
    sandbox: LocalSandbox,
    name: str,
    token: str,
    places: dict[str, object],
    require_isolation: Callable[..., None],
) -> None:
    sandbox.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])
    require_isolation(sandbox, "mnt", "minimal-root", "pid", "net", "seccomp")
    completion = stdin_completion(name, **places)
    [detail] = score_batch([(secret_problem(token), completion)], ALL_TIERS, sandbox, time_limit_s=10)
    assert_earns_nothing(detail, name)
    if name in STDIN_SEES:  # and what it found there: nothing of the host
        request = ExecutionRequest(code=stdin_program(name, **places), tests=[TestSpec(input="2\n")])
        [result] = sandbox.run_batch([request])
        assert result.results[0].stdout.strip() == STDIN_SEES[name], result.results[0]


@pytest.mark.parametrize("name", ["network", "proc_of_others", "read_the_data_file"])
def test_stdin_programs_find_the_answer_without_the_jail(
    name: str, token: str, places: dict[str, object]
) -> None:
    """The control: run as a plain process of this user, each attack prints exactly the answer (so its
    reward 0 in the jail means the jail kept the answer out of reach, not that the attack was broken)."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", stdin_program(name, **places)],
        input="2\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == f"{token}-2\n", done.stdout + done.stderr


def test_etc_shadow_exists_without_the_jail() -> None:
    """The control of `etc_shadow`: outside the jail the file is there (readable by root only)."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", stdin_program("etc_shadow")], capture_output=True, text=True, timeout=60
    )
    seen = done.stdout.strip()
    assert seen == "PermissionError" or seen.endswith(" bytes"), done.stdout + done.stderr


def test_the_program_never_holds_test_code_or_expected_values(
    sandbox: LocalSandbox, require_isolation: Callable[..., None]
) -> None:
    """The program scans all of its own readable memory for the tests' text and expected value."""
    sandbox.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])
    require_isolation(sandbox, "private-proc")
    expected = 2 * 918273645
    scan = textwrap.dedent(
        """
        import ctypes, re, sys
        CONTROL = "cont" + "rol-4711"  # a positive control: the scan must find this copy
        def double(x):
            # Patterns that match the tests' text and expected value without containing them.
            patterns = (
                rb"assert[ ]double[(]", rb"18365[4]7290", rb"double[(]3[)][ ]== 6", rb"cont[r]ol-4711"
            )
            needles = [re.compile(p) for p in patterns]
            hits = {n: 0 for n in needles}
            regions = [line.split() for line in open("/proc/self/maps")]
            for fields in regions:
                anonymous = len(fields) == 5 or fields[5] in ("[heap]", "[stack]")
                if not fields[1].startswith("r") or not anonymous:
                    continue  # the heap and anonymous maps hold every Python object; files cannot change
                start, end = (int(part, 16) for part in fields[0].split("-"))
                chunk = ctypes.string_at(start, end - start)
                for needle in needles:
                    hits[needle] += len(needle.findall(chunk))
            print(*(min(count, 1) for count in hits.values()), file=sys.stderr)
            return 0
        """
    )
    assert str(expected) == "1836547290"
    request = ExecutionRequest(
        code=scan,
        kind=ProgramKind.FUNCTION,
        entry_point="double",
        tests=[TestSpec(input=f"assert double(918273645) == {expected}\nassert double(3) == 6")],
        time_limit_s=20,
    )
    [result] = sandbox.run_batch([request])
    outcome = result.results[0]
    assert outcome.status is Verdict.WRONG_ANSWER, outcome
    # Neither test's text nor the expected value is anywhere in the process; the control is.
    assert outcome.stderr.split() == ["0", "0", "0", "1"], outcome.stderr


def test_a_daemon_dies_with_a_helper_killed_from_outside(require_isolation: Callable[..., None]) -> None:
    marker = "tsb" + uuid.uuid4().hex[:12]
    daemon = textwrap.dedent(
        f"""
        import ctypes, os, time
        ctypes.CDLL(None).prctl(15, b"{marker}", 0, 0, 0)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(120)
            os._exit(0)
        time.sleep(120)
        """
    )
    time_limit_s = 60.0
    with LocalSandbox(1) as sandbox:
        sandbox.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])
        require_isolation(sandbox, "pid")
        future = sandbox.submit(ExecutionRequest(code=daemon, tests=[TestSpec()], time_limit_s=time_limit_s))
        deadline = time.monotonic() + time_limit_s / 2
        while len(processes_named(marker)) < 2:  # the program and its daemon are up
            assert time.monotonic() < deadline, "the program never started its daemon"
            time.sleep(0.05)
        os.kill(sandbox.capabilities["pid"], signal.SIGKILL)
        result = future.result(timeout=time_limit_s)
        assert result.results[0].status is Verdict.SANDBOX_ERROR  # the supervisor saw its helper die
        while processes_named(marker):  # the kernel tears the namespace down; nothing may survive it
            assert time.monotonic() < deadline, f"left behind: {processes_named(marker)}"
            time.sleep(0.05)


def test_no_abstract_socket_between_concurrent_or_later_runs(sandbox: LocalSandbox) -> None:
    name = "tarot-" + uuid.uuid4().hex
    marker = "tsa" + uuid.uuid4().hex[:12]
    listener = textwrap.dedent(
        f"""
        import ctypes, os, socket, time
        s = socket.socket(socket.AF_UNIX)
        s.bind("\\0{name}")
        s.listen()
        if os.fork() == 0:
            os.setsid()
            time.sleep(30)  # a daemon keeping the socket for later runs
        ctypes.CDLL(None).prctl(15, b"{marker}", 0, 0, 0)  # named only once it listens
        print("listening", flush=True)
        time.sleep(30)
        """
    )
    connector = textwrap.dedent(
        f"""
        import socket
        try:
            socket.socket(socket.AF_UNIX).connect("\\0{name}")
            print("connected")
        except OSError as exc:
            print(type(exc).__name__)
        """
    )
    listening = sandbox.submit(ExecutionRequest(code=listener, tests=[TestSpec()], time_limit_s=10))
    deadline = time.monotonic() + 30
    while not processes_named(marker):  # the barrier: the listener is listening now
        assert time.monotonic() < deadline and not listening.done(), "the listener never listened"
        time.sleep(0.02)
    [concurrent] = sandbox.run_batch([ExecutionRequest(code=connector, tests=[TestSpec()], time_limit_s=5)])
    assert processes_named(marker), "the listener ended before the connector tried: no overlap"
    assert concurrent.results[0].stdout.strip() == "ConnectionRefusedError", concurrent.results[0]
    assert listening.result(timeout=60).results[0].stdout.strip() == "listening"
    later = sandbox.run_batch([ExecutionRequest(code=connector, tests=[TestSpec()])] * 4)
    for result in later:  # whichever helper runs it, one has run the listener and its daemon
        assert result.results[0].stdout.strip() == "ConnectionRefusedError", result.results[0]
