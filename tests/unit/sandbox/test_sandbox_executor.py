"""The local executor against real hostile programs: verdicts, limits, containment, no leftovers."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from process_helpers import processes_named

from tarot_jobs.sandbox.limits import RunLimits
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.pool import REPLY_GRACE_S
from tarot_jobs.sandbox.types import ExecutionRequest, ProgramKind, TestResult, TestSpec, Verdict


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(2, limits=RunLimits(max_output_bytes=1 << 20)) as backend:
        yield backend


def _marker() -> str:
    return "tsb" + uuid.uuid4().hex[:12]  # fits /proc/<pid>/comm (15 chars)


def _tag(marker: str) -> str:
    """Program prologue that names the process `marker`; forks inherit the name."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, b'{marker}', 0, 0, 0)\n"


def run(
    sandbox: LocalSandbox,
    code: str,
    stdin: str = "",
    expected: str | None = None,
    *,
    time_limit_s: float = 5.0,
    memory_limit_mb: int = 256,
    float_tolerance: float | None = None,
) -> TestResult:
    request = ExecutionRequest(
        code=textwrap.dedent(code),
        tests=[TestSpec(input=stdin, output=expected)],
        time_limit_s=time_limit_s,
        memory_limit_mb=memory_limit_mb,
        float_tolerance=float_tolerance,
    )
    [result] = sandbox.run_batch([request])
    assert result.mode == "forkserver"
    return result.results[0]


def run_contained(sandbox: LocalSandbox, body: str, **kwargs: object) -> TestResult:
    """Run a tagged program and assert that nothing it started is left afterwards."""
    marker = _marker()
    result = run(sandbox, _tag(marker) + textwrap.dedent(body), **kwargs)  # type: ignore[arg-type]
    assert processes_named(marker) == [], f"processes left behind: {result}"
    return result


# --- verdicts ----------------------------------------------------------------------------------


def test_stdin_stdout_verdicts(sandbox: LocalSandbox) -> None:
    code = "a, b = map(int, input().split())\nprint(a + b)\n"
    request = ExecutionRequest(
        code=code,
        tests=[
            TestSpec(input="1 2\n", output="3\n"),
            TestSpec(input="1 2\n", output="4"),
            TestSpec(input="2 2\n", output=None),
            TestSpec(input="x\n", output="3"),
        ],
    )
    [result] = sandbox.run_batch([request])
    statuses = [r.status for r in result.results]
    assert statuses == [Verdict.PASSED, Verdict.WRONG_ANSWER, Verdict.COMPLETED, Verdict.RUNTIME_ERROR]
    assert result.results[0].stdout == "3\n" and result.results[0].exit_code == 0
    assert result.results[0].wall_ms > 0
    assert "ValueError" in result.results[3].stderr and result.results[3].exit_code == 1
    assert "helper.py" not in result.results[3].stderr  # the helper's frame is hidden


def test_syntax_error_is_a_runtime_error(sandbox: LocalSandbox) -> None:
    result = run(sandbox, "def broken(:\n", expected="1")
    assert result.status is Verdict.RUNTIME_ERROR
    assert "SyntaxError" in result.stderr


def test_exit_codes(sandbox: LocalSandbox) -> None:
    assert run(sandbox, "print(1)\nraise SystemExit(0)", expected="1").status is Verdict.PASSED
    failed = run(sandbox, "import sys\nprint(1)\nsys.exit(3)", expected="1")
    assert failed.status is Verdict.RUNTIME_ERROR and failed.exit_code == 3


def test_threaded_programs_and_atexit_finish_before_judging(sandbox: LocalSandbox) -> None:
    code = """
        import atexit, sys, threading
        atexit.register(lambda: print("bye"))
        threading.stack_size(1 << 26)
        def main():
            print(sum(int(x) for x in sys.stdin.read().split()))
        threading.Thread(target=main).start()
    """
    assert run(sandbox, code, "1 2 3", "6\nbye").status is Verdict.PASSED


def test_float_tolerance_is_opt_in(sandbox: LocalSandbox) -> None:
    code = "print(1/3)"
    assert run(sandbox, code, expected="0.333333").status is Verdict.WRONG_ANSWER
    assert run(sandbox, code, expected="0.333333", float_tolerance=1e-5).status is Verdict.PASSED


def test_function_style_verdicts(sandbox: LocalSandbox) -> None:
    request = ExecutionRequest(
        code="def add(a, b):\n    return a + b\n",
        kind=ProgramKind.FUNCTION,
        entry_point="add",
        tests=[
            TestSpec(input="assert add(1, 2) == 3"),
            TestSpec(input="assert add(1, 2) == 4"),
            TestSpec(input="add(1)"),
            TestSpec(input="import sys\nsys.exit(0)\nassert add(1, 2) == 4"),
            TestSpec(input="assert [add(i, i) for i in range(3)] == [0, 2, 4]\nassert add('a', 'b') == 'ab'"),
        ],
    )
    [result] = sandbox.run_batch([request])
    assert [r.status for r in result.results] == [
        Verdict.PASSED,
        Verdict.WRONG_ANSWER,
        Verdict.RUNTIME_ERROR,
        Verdict.RUNTIME_ERROR,
        Verdict.PASSED,
    ]
    assert "TypeError" in result.results[2].detail  # raised in the program, seen by the test
    assert "SystemExit" in result.results[3].detail  # a test that stops early did not pass
    # A program that leaves before answering (exit(0) at import, or inside the call) does not pass.
    for code in (
        "import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b\n",
        "import os\ndef add(a, b):\n    os._exit(0)\n",
    ):
        [early] = sandbox.run_batch([request.model_copy(update={"code": code, "tests": request.tests[:1]})])
        assert early.results[0].status is Verdict.RUNTIME_ERROR, early
        assert "did not answer" in early.results[0].detail


def test_large_stdin_and_stdout_stream_without_deadlock(sandbox: LocalSandbox) -> None:
    data = "x" * 500_000 + "\n"
    result = run(sandbox, "import sys\nsys.stdout.write(sys.stdin.read())", data, data)
    assert result.status is Verdict.PASSED
    assert len(result.stdout) < 10_000  # the kept text is capped; the comparison saw all of it


def test_program_state_does_not_leak_between_runs(sandbox: LocalSandbox) -> None:
    writer = "import builtins\nbuiltins.LEAK = 1\nopen('left.txt', 'w').write('x')\nprint('ok')"
    reader = "import builtins, os\nprint(hasattr(builtins, 'LEAK'), os.path.exists('left.txt'))"
    for _ in range(3):  # whichever helper runs the reader, it has seen a writer
        assert run(sandbox, writer, expected="ok").status is Verdict.PASSED
    assert run(sandbox, reader, expected="False False").status is Verdict.PASSED


def test_only_the_scratch_directory_is_writable(
    sandbox: LocalSandbox, tmp_path: Path, require_isolation: Callable[..., None]
) -> None:
    run(sandbox, "print(1)")  # the helpers report their isolation once started
    require_isolation(sandbox, "mnt", "minimal-root")
    code = f"""
        import os, tempfile
        open("mine.txt", "w").write("ok")
        tempfile.mkstemp()
        for path in ("{tmp_path}/escaped.txt", "/escaped.txt", "/usr/escaped.txt", os.__file__):
            try:
                open(path, "a")
            except OSError as exc:
                print(type(exc).__name__)
    """
    result = run(sandbox, code)
    assert result.status is Verdict.COMPLETED, result.stderr
    # The host's tmp does not exist in the jail; the root, /usr and the stdlib are read-only.
    outcome = result.stdout.split()
    assert outcome[0] == "FileNotFoundError" and len(outcome) == 4, result.stdout
    assert set(outcome[1:]) <= {"OSError", "PermissionError"}, result.stdout  # EROFS, or EACCES first
    assert not (tmp_path / "escaped.txt").exists()


# --- limits ------------------------------------------------------------------------------------


def test_busy_loop_times_out_by_wall_clock(sandbox: LocalSandbox) -> None:
    limit_s = 0.5
    result = run_contained(sandbox, "while True:\n    pass\n", time_limit_s=limit_s)
    assert result.status is Verdict.TIMEOUT
    # Not before the limit; killed by the helper's own deadline (the pool's grace never ran out).
    assert limit_s * 1000 <= result.wall_ms < (limit_s + REPLY_GRACE_S) * 1000


def test_sleeping_program_ignoring_sigterm_is_killed(sandbox: LocalSandbox) -> None:
    body = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
    limit_s = 0.5
    result = run_contained(sandbox, body, time_limit_s=limit_s)
    assert result.status is Verdict.TIMEOUT
    assert limit_s * 1000 <= result.wall_ms < (limit_s + REPLY_GRACE_S) * 1000


def test_memory_hog_is_a_memory_limit(sandbox: LocalSandbox) -> None:
    assert run(sandbox, "x = bytearray(1 << 30)", memory_limit_mb=128).status is Verdict.MEMORY_LIMIT
    grow = "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))\n"
    assert run_contained(sandbox, grow, memory_limit_mb=128).status is Verdict.MEMORY_LIMIT


def test_stdout_flood_is_an_output_limit(sandbox: LocalSandbox) -> None:
    limit_s = 60.0
    result = run_contained(sandbox, "while True:\n    print('y' * 4096)\n", time_limit_s=limit_s)
    assert result.status is Verdict.OUTPUT_LIMIT
    assert result.wall_ms < limit_s * 1000  # killed as soon as the cap was crossed, not at the time limit
    stderr_flood = "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\n"
    assert run_contained(sandbox, stderr_flood).status is Verdict.OUTPUT_LIMIT


def test_file_size_and_open_file_limits(sandbox: LocalSandbox) -> None:
    big_file = "with open('big', 'wb') as f:\n    f.write(b'z' * (32 << 20))\n"
    assert run(sandbox, big_file).status is Verdict.RUNTIME_ERROR  # SIGXFSZ or EFBIG
    many_files = "fs = [open('/dev/null') for _ in range(1000)]\n"
    result = run(sandbox, many_files)
    assert result.status is Verdict.RUNTIME_ERROR and "Too many open files" in result.stderr


def test_no_core_dumps_and_crashes_are_runtime_errors(sandbox: LocalSandbox) -> None:
    result = run(sandbox, "import ctypes\nctypes.string_at(0)\n")
    assert result.status is Verdict.RUNTIME_ERROR and result.signal == signal.SIGSEGV


# --- containment -------------------------------------------------------------------------------


def test_fork_bomb_is_contained(sandbox: LocalSandbox) -> None:
    body = """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """
    result = run_contained(sandbox, body, time_limit_s=1.0)
    assert result.status is Verdict.TIMEOUT
    assert run(sandbox, "print('next')", expected="next").status is Verdict.PASSED


def test_daemonized_grandchild_is_killed(sandbox: LocalSandbox) -> None:
    body = """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.close(1); os.close(2)
                time.sleep(60)
            os._exit(0)
        os.wait()
        print("parent done")
    """
    assert run_contained(sandbox, body, expected="parent done").status is Verdict.PASSED


def test_background_child_holding_stdout_does_not_hang_the_run(sandbox: LocalSandbox) -> None:
    body = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nprint('done')\n"
    limit_s = 60.0
    result = run_contained(sandbox, body, expected="done", time_limit_s=limit_s)
    assert result.status is Verdict.PASSED and result.wall_ms < limit_s * 1000  # not held to the limit


def test_cannot_kill_the_helper_or_everyone(sandbox: LocalSandbox) -> None:
    for target in ("os.getppid()", "-1", "1"):
        result = run(sandbox, f"import os, signal\nos.kill({target}, signal.SIGKILL)\n")
        assert result.status is Verdict.RUNTIME_ERROR and "PermissionError" in result.stderr, target
    assert run(sandbox, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)").signal == signal.SIGKILL
    assert run(sandbox, "print('alive')", expected="alive").status is Verdict.PASSED


def test_no_network_even_to_a_local_listener(sandbox: LocalSandbox) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        listener.settimeout(0)
        code = f"import socket\nsocket.socket().connect(('127.0.0.1', {port}))\nprint('connected')\n"
        result = run(sandbox, code, expected="connected")
        assert result.status is Verdict.RUNTIME_ERROR
        assert "PermissionError" in result.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()
    udp = "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
    assert "PermissionError" in run(sandbox, udp).stderr
    # Local IPC without the network keeps working.
    assert (
        run(sandbox, "import socket\na, b = socket.socketpair()\nprint('ok')", expected="ok").status
        is Verdict.PASSED
    )


def test_environment_and_identity_are_not_the_services(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAROT_TEST_SECRET", "hunter2")
    result = run(sandbox, "import os\nprint(sorted(os.environ))\nprint(os.getuid())\n")
    assert "TAROT_TEST_SECRET" not in result.stdout
    assert result.stdout.split("\n")[1] != "0"  # never root: an unprivileged uid, or this user's
    # No descriptor of the helper's (its protocol pipes, its writable view of /tmp) is left open.
    fds = run(sandbox, "import os\nprint(*sorted(int(fd) for fd in os.listdir('/proc/self/fd')))")
    assert fds.stdout.split() == ["0", "1", "2", "3"]  # stdin, stdout, stderr + listdir's own
    # Neither this process's environment nor the (non-dumpable) helper's can be read.
    for pid in (str(os.getpid()), "os.getppid()"):
        stolen = run(sandbox, f"import os\nprint(open(f'/proc/{{{pid}}}/environ').read())\n")
        assert stolen.status is Verdict.RUNTIME_ERROR, pid
        # Our process is not even there (another PID namespace); the helper's is not readable.
        assert "PermissionError" in stolen.stderr or "FileNotFoundError" in stolen.stderr, pid
        assert "hunter2" not in stolen.stdout


def test_a_dead_helper_is_a_sandbox_error_and_is_replaced() -> None:
    with LocalSandbox(1) as sandbox:
        assert run(sandbox, "print(1)", expected="1").status is Verdict.PASSED
        helper_pid = sandbox.capabilities["pid"]
        sleeper = ExecutionRequest(code="import time\ntime.sleep(30)", tests=[TestSpec()], time_limit_s=20)
        future = sandbox.submit(sleeper)
        os.kill(helper_pid, signal.SIGKILL)
        assert future.result(timeout=25).results[0].status is Verdict.SANDBOX_ERROR
        assert future.result().infrastructure_failed
        assert run(sandbox, "print(2)", expected="2").status is Verdict.PASSED
        assert sandbox.capabilities["pid"] != helper_pid


def test_subprocess_path_gives_the_same_verdicts() -> None:
    with LocalSandbox(1, fast=False) as sandbox:
        request = ExecutionRequest(
            code="print(int(input()) * 2)",
            tests=[TestSpec(input="2", output="4"), TestSpec(input="2", output="5")],
        )
        [result] = sandbox.run_batch([request])
    assert result.mode == "subprocess"
    assert [r.status for r in result.results] == [Verdict.PASSED, Verdict.WRONG_ANSWER]


def test_many_programs_in_one_batch_keep_their_order(sandbox: LocalSandbox) -> None:
    requests = [
        ExecutionRequest(code=f"print({i})", tests=[TestSpec(output=str(i)), TestSpec(output=str(i + 1))])
        for i in range(20)
    ]
    results = sandbox.run_batch(requests)
    assert all([r.status for r in res.results] == [Verdict.PASSED, Verdict.WRONG_ANSWER] for res in results)
