"""Signals by a file's owner and nested namespaces, tried from inside the jail: refused, nobody reached.

`kill()` may only reach the program's own process group (seccomp), but the kernel sends a file's I/O
signal to whatever process `fcntl(F_SETOWN)` (or `F_SETOWN_EX`, `ioctl(FIOSETOWN)`) named, checking only
uids. The probe forks a child into a session of its own (out of kill()'s reach), names it the owner of a
socket with `F_SETSIG` SIGUSR1, makes I/O on the socket, and tries kill(SIGUSR2) as well; the child
reports which signals arrived. Outside the jail (the control) both arrive; inside, every call is refused
and nothing arrives. The namespace probe tries unshare, clone with CLONE_NEW* flags, clone3 and setns.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, TestSpec, Verdict

FILE_OWNER_PROBE = textwrap.dedent(
    """
    import ctypes, errno, fcntl, os, signal, socket, struct

    def attempt(name, call):
        try:
            call()
            print(name, "ok", flush=True)
        except OSError as exc:
            print(name, errno.errorcode[exc.errno], flush=True)

    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.setsid()  # another session and group: kill() from the parent may not reach it
        got = set()
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, lambda number, _: got.add(signal.Signals(number).name))
        os.write(ready_w, b"x")
        os.read(done_r, 1)  # the parent is done; a queued signal runs its handler before this returns
        print("child got:", " ".join(sorted(got)) or "nothing", flush=True)
        os._exit(0)
    os.read(ready_r, 1)  # the barrier: the child's handlers are in place
    a, b = socket.socketpair()
    attempt("F_SETOWN", lambda: fcntl.fcntl(a, fcntl.F_SETOWN, child))
    owner = struct.pack("ii", 1, child)  # struct f_owner_ex {F_OWNER_PID, pid}
    attempt("F_SETOWN_EX", lambda: fcntl.fcntl(a, 15, owner))
    attempt("FIOSETOWN", lambda: fcntl.ioctl(a, 0x8901, struct.pack("i", child)))
    attempt("F_SETSIG", lambda: fcntl.fcntl(a, 10, signal.SIGUSR1))
    fcntl.fcntl(a, fcntl.F_SETFL, fcntl.fcntl(a, fcntl.F_GETFL) | os.O_ASYNC)
    b.send(b"x")  # I/O on the socket: the kernel signals its owner now
    attempt("kill", lambda: os.kill(child, signal.SIGUSR2))
    os.write(done_w, b"x")
    os.waitpid(child, 0)
    """
)

NAMESPACE_PROBE = textwrap.dedent(
    """
    import ctypes, errno, os, platform, threading
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE, CLONE3 = {"x86_64": (56, 435), "aarch64": (220, 435)}[platform.machine()]

    def report(name, result):
        print(name, "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()])

    for name, flag in (("user", 0x10000000), ("mnt", 0x20000), ("net", 0x40000000), ("pid", 0x20000000),
                       ("ipc", 0x08000000), ("uts", 0x04000000), ("cgroup", 0x02000000)):
        report("unshare " + name, libc.unshare(flag))
    pid = libc.syscall(CLONE, 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    report("clone newuser", pid)
    args = (ctypes.c_uint64 * 11)(0x40000000)  # struct clone_args {flags = CLONE_NEWNET, ...}
    report("clone3", libc.syscall(CLONE3, ctypes.byref(args), ctypes.sizeof(args)))
    report("setns", libc.setns(-1, 0))
    # What programs need still works: threads (the C library falls back from clone3 to clone), fork.
    ran = []
    thread = threading.Thread(target=lambda: ran.append(1))
    thread.start()
    thread.join()
    child = os.fork()
    if child == 0:
        os._exit(3)
    print("thread", "ran" if ran else "failed", "fork", os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
    """
)


def _in_the_sandbox(sandbox: LocalSandbox, code: str) -> str:
    [result] = sandbox.run_batch([ExecutionRequest(code=code, tests=[TestSpec()], time_limit_s=10)])
    outcome = result.results[0]
    assert outcome.status is Verdict.COMPLETED, outcome
    return outcome.stdout


def _outside(code: str) -> str:
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_files_signal_reaches_another_session_outside_the_jail() -> None:
    """The control: the route exists (same uid, no filter), and so does kill()."""
    assert _outside(FILE_OWNER_PROBE).splitlines() == [
        "F_SETOWN ok",
        "F_SETOWN_EX ok",
        "FIOSETOWN ok",
        "F_SETSIG ok",
        "kill ok",
        "child got: SIGUSR1 SIGUSR2",
    ]


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param(
            FILE_OWNER_PROBE,
            [
                "F_SETOWN EPERM",
                "F_SETOWN_EX EPERM",
                "FIOSETOWN EPERM",
                "F_SETSIG EPERM",
                "kill EPERM",
                "child got: nothing",
            ],
            id="no signal by a file's owner",
        ),
        pytest.param(
            NAMESPACE_PROBE,
            [
                *(f"unshare {name} EPERM" for name in ("user", "mnt", "net", "pid", "ipc", "uts", "cgroup")),
                "clone newuser EPERM",
                "clone3 ENOSYS",
                "setns EPERM",
                "thread ran fork 3",
            ],
            id="no namespace can be made",
        ),
    ],
)
def test_the_jail_refuses(
    probe: str, expected: list[str], sandbox: LocalSandbox, require_isolation: Callable[..., None]
) -> None:
    sandbox.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])
    require_isolation(sandbox, "seccomp")
    assert _in_the_sandbox(sandbox, probe).splitlines() == expected
