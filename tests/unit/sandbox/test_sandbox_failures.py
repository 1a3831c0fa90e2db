"""When the sandbox itself fails: hung or dead helpers, broken frames, refused namespaces, fallbacks.

Each failure must come back as `sandbox_error` (never a verdict about the
program), the broken helper must be replaced, and the isolation in effect must
be said. Helpers that break the protocol are real processes (small scripts
put in place of helper.py); refused namespaces are real refusals (a seccomp
filter that denies unshare(2), inherited by the helpers).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tarot_jobs.sandbox import pool
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, TestSpec, Verdict

ECHO = ExecutionRequest(code="print(input())", tests=[TestSpec(input="hi", output="hi")], time_limit_s=2)

# A stand-in for helper.py: answers the start-up like a helper, then breaks the protocol as told.
FAKE_HELPER = """
import json, os, socket, struct, sys
sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
def send(data):
    sock.sendall(data)
def frame(message):
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body
def read_job():
    size = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))[0]
    sock.recv(size, socket.MSG_WAITALL)
MODE = {mode!r}
if MODE == "refuse":
    send(frame({{"ready": False, "error": "unshare(CLONE_NEWPID): Operation not permitted"}}))
    sys.exit(3)
send(frame({{"ready": True, "isolation": {{"namespaces": [], "refused": {{}}}}}}))
read_job()
if MODE == "not_json":
    send(struct.pack(">I", 5) + b"nope!")
elif MODE == "too_long":
    send(struct.pack(">I", 0xFFFFFFF0))
elif MODE == "not_object":
    send(frame([1, 2, 3])[:0] + struct.pack(">I", 9) + b"[1, 2, 3]")
elif MODE == "exit":
    sys.exit(0)
sock.recv(1)
"""


def _fake_helper(tmp_path: Path, mode: str) -> Path:
    script = tmp_path / f"helper_{mode}.py"
    script.write_text(FAKE_HELPER.format(mode=mode))
    return script


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("not_json", "malformed frame"),
        ("too_long", "over the limit"),
        ("not_object", "JSON object"),
        ("exit", "exited"),
    ],
)
def test_a_helper_that_breaks_the_protocol_is_a_sandbox_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, says: str
) -> None:
    monkeypatch.setattr(pool, "HELPER_SCRIPT", _fake_helper(tmp_path, mode))
    with LocalSandbox(1) as sandbox:
        [result] = sandbox.run_batch([ECHO])
    assert result.results[0].status is Verdict.SANDBOX_ERROR
    assert says in result.results[0].detail, result.results[0].detail


def test_a_refused_jail_is_said_and_nothing_runs_outside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "HELPER_SCRIPT", _fake_helper(tmp_path, "refuse"))
    with LocalSandbox(1) as sandbox:
        [result] = sandbox.run_batch([ECHO])
        assert sandbox.fast_path_error is not None and "CLONE_NEWPID" in sandbox.fast_path_error
    # The one-shot fallback is refused too: a sandbox error naming the namespace, not a run.
    assert result.results[0].status is Verdict.SANDBOX_ERROR
    assert "CLONE_NEWPID" in result.results[0].detail


def test_warm_helpers_unavailable_falls_back_to_a_subprocess_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pool.HELPER_SCRIPT
    only_once = tmp_path / "only_once.py"
    only_once.write_text(
        "import os, sys\n"
        "if '--once' not in sys.argv:\n    sys.exit(1)  # a warm helper cannot start\n"
        f"os.execv(sys.executable, [sys.executable, '-I', {str(real)!r}, *sys.argv[1:]])\n"
    )
    monkeypatch.setattr(pool, "HELPER_SCRIPT", only_once)
    request = ECHO.model_copy(
        update={"tests": [TestSpec(input="2", output="2"), TestSpec(input="2", output="3")]}
    )
    with LocalSandbox(1) as sandbox:
        [result] = sandbox.run_batch([request])
        assert sandbox.fast_path_error is not None and "warm helper unavailable" in sandbox.fast_path_error
    assert result.mode == "subprocess" and "jail(" in result.path, result.path
    assert [r.status for r in result.results] == [Verdict.PASSED, Verdict.WRONG_ANSWER]


def _jailed_helper_pid(launcher: int) -> int:
    with open(f"/proc/{launcher}/task/{launcher}/children") as f:
        children = [int(pid) for pid in f.read().split()]
    assert len(children) == 1, children
    return children[0]


def test_a_hung_helper_is_killed_and_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    grace_s = 1.0
    monkeypatch.setattr(pool, "REPLY_GRACE_S", grace_s)
    with LocalSandbox(1) as sandbox:
        assert sandbox.run_batch([ECHO])[0].results[0].status is Verdict.PASSED
        launcher = sandbox.capabilities["pid"]
        os.kill(_jailed_helper_pid(launcher), signal.SIGSTOP)  # alive, but never answers
        started = time.monotonic()
        [hung] = sandbox.run_batch([ECHO])
        waited = time.monotonic() - started
        assert hung.results[0].status is Verdict.SANDBOX_ERROR
        assert "did not answer in time" in hung.results[0].detail
        assert waited >= ECHO.time_limit_s + grace_s  # the pool waited out the run's limit and its grace
        assert sandbox.run_batch([ECHO])[0].results[0].status is Verdict.PASSED
        assert sandbox.capabilities["pid"] != launcher


# A harness process that cannot create namespaces: a seccomp filter makes unshare(2) fail with EPERM,
# as a container runtime's default profile does; the helpers it starts inherit the filter.
NO_UNSHARE = """
import ctypes, json, os, sys
from tarot_jobs.sandbox import seccomp
p = seccomp._Program()
p.load(0)
p.jump_if(seccomp._JMP_JEQ_K, 272, "deny")  # unshare on x86_64
p.ret(seccomp._SECCOMP_RET_ALLOW)
p.label("deny")
p.ret(seccomp._DENY)
program = p.assemble()
buffer = ctypes.create_string_buffer(program, len(program))
fprog = seccomp._SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, TestSpec
with LocalSandbox(1) as sandbox:
    echo = ExecutionRequest(code="print(input())", tests=[TestSpec(input="x", output="x")])
    call = ExecutionRequest(code="def f(x):\\n    return x\\n", kind="function", entry_point="f",
                            tests=[TestSpec(input="assert f(2) == 2"), TestSpec(input="assert f(2) == 3")])
    [result, called] = sandbox.run_batch([echo, call])
    print(json.dumps({"status": result.results[0].status, "detail": result.results[0].detail,
                      "function": [r.status for r in called.results],
                      "path": result.path, "isolation": sandbox.capabilities}))
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the harness's filter names x86_64's unshare")
@pytest.mark.parametrize("pod_boundary", [False, True])
def test_refused_namespaces_are_named_and_run_only_with_the_pod_boundary_flag(pod_boundary: bool) -> None:
    env = {**os.environ, pool.POD_BOUNDARY_ENV: "1" if pod_boundary else ""}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NO_UNSHARE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    if not pod_boundary:
        assert outcome["status"] == "sandbox_error", outcome
        assert "CLONE_NEWPID" in outcome["detail"] and "--pod-boundary" in outcome["detail"], outcome
        return
    assert outcome["status"] == "passed", outcome
    assert outcome["function"] == ["passed", "wrong_answer"], outcome
    assert outcome["path"].startswith("forkserver+pod-boundary(refused:"), outcome
    refused = outcome["isolation"]["refused"]
    assert {"mnt", "pid", "net"} <= set(refused) and "Operation not permitted" in refused["mnt"], refused
    assert outcome["isolation"]["root"] == "host"
