"""A run leaves nothing behind: a second run on the same warm helper sees nothing of the first.

One worker, so every run lands on the same helper. Each hostile program leaves something (SysV
shared memory, semaphores, message queues, a POSIX message queue, files, a mode-000 directory, a
tree deeper than PATH_MAX, a full scratch, a chmod of the scratch itself); the next program, which
knows nothing of the attack, must find nothing and an honest program must still pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, TestSpec, Verdict

SYSV = """
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
MQ_OPEN = {"x86_64": 240, "aarch64": 180}[platform.machine()]  # the kernel's name has no leading slash
"""

LEAVE = {
    "shm": SYSV
    + """
shm = libc.shmget(0x5EC2E7, 1 << 20, 0o1600)
if shm >= 0:
    address = libc.shmat(shm, None, 0)
    ctypes.memmove(address, b"answer-from-run-one", 19)
    libc.shmctl(shm, 1, (ctypes.c_char * 512)())  # IPC_SET to nothing: still ours
print(shm)
""",
    "sem": SYSV + "print(libc.semget(0x5EC2E7, 3, 0o1600))\n",
    "msg": SYSV + "print(libc.msgget(0x5EC2E7, 0o1600))\n",
    "posix_mq": SYSV + "print(libc.syscall(MQ_OPEN, b'tarot-answer', os.O_CREAT | os.O_RDWR, 0o600, None))\n",
    "files": "import os, tempfile\nopen('left.txt', 'w').write('answer')\nprint(tempfile.gettempdir())\n",
    "mode_000_dir": (
        "import os\nos.makedirs('d/e/f')\nopen('d/e/f/x', 'w').write('a')\n"
        "os.chmod('d/e', 0)\nos.chmod('d', 0)\n"
    ),
    "deeper_than_path_max": (
        "import os\nfor _ in range(700):\n    os.mkdir('d' * 10)\n    os.chdir('d' * 10)\n"
        "open('answer', 'w').write('x')\nos.chmod('.', 0)\n"
    ),
    "fill_scratch": (
        "try:\n    f = open('big', 'wb')\n    while True:\n        f.write(b'x' * (1 << 20))\n"
        "except OSError:\n    pass\n"
    ),
    "chmod_scratch": "import os\nos.chmod('.', 0)\n",
    "xattr_and_times": "import os\nos.setxattr('.', 'user.answer', b'42')\nos.utime('.', (424242, 424242))\n",
}

LOOK = (
    SYSV
    + """
import tempfile
found = []
if libc.shmget(0x5EC2E7, 0, 0) >= 0: found.append("shm")
if libc.semget(0x5EC2E7, 0, 0) >= 0: found.append("sem")
if libc.msgget(0x5EC2E7, 0) >= 0: found.append("msg")
if libc.syscall(MQ_OPEN, b"tarot-answer", os.O_RDONLY, 0, None) >= 0: found.append("posix_mq")
scratch = tempfile.gettempdir()
if os.listdir(scratch): found.append(f"files:{os.listdir(scratch)}")
if os.stat(scratch).st_mode & 0o777 != 0o700: found.append("mode")
if os.listxattr(scratch): found.append("xattr")
if os.stat(scratch).st_mtime == 424242: found.append("times")
open("honest", "wb").write(b"y" * (8 << 20))  # an honest program that needs its scratch
print(found)
"""
)


@pytest.fixture(scope="module")
def one_helper() -> Iterator[LocalSandbox]:
    with LocalSandbox(1) as backend:
        backend.run_batch([ExecutionRequest(code="pass", tests=[TestSpec()])])  # the jail says what it has
        yield backend


def _run(sandbox: LocalSandbox, code: str) -> tuple[Verdict, str, str]:
    [result] = sandbox.run_batch([ExecutionRequest(code=code, tests=[TestSpec()], time_limit_s=20)])
    test = result.results[0]
    return test.status, test.stdout, test.detail + test.stderr


@pytest.mark.parametrize("attack", sorted(LEAVE))
def test_the_next_run_sees_nothing_of_the_last(
    one_helper: LocalSandbox, require_isolation: Callable[..., None], attack: str
) -> None:
    require_isolation(one_helper, "ipc", "mnt", "minimal-root")
    status, _, detail = _run(one_helper, LEAVE[attack])
    assert status is not Verdict.SANDBOX_ERROR, detail  # never a way to be dropped
    status, stdout, detail = _run(one_helper, LOOK)
    assert status is Verdict.COMPLETED, detail
    assert stdout.strip() == "[]", stdout


def test_shared_memory_does_not_outlive_its_run(
    one_helper: LocalSandbox, require_isolation: Callable[..., None]
) -> None:
    require_isolation(one_helper, "ipc")
    status, stdout, detail = _run(one_helper, LEAVE["shm"])
    assert status is Verdict.COMPLETED, detail
    if int(stdout) < 0:  # not even created: see test_ipc_is_bounded_per_run_or_refused
        assert one_helper.capabilities["ipc"].startswith("refused to programs"), one_helper.capabilities
        return
    gone = SYSV + f"print(libc.shmctl({int(stdout)}, 2, (ctypes.c_char * 512)()))  # IPC_STAT\n"
    assert _run(one_helper, gone)[1].strip() == "-1"


CREATE_EACH = (
    SYSV
    + """
import errno
def tried(result):
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
print(tried(libc.shmget(0, 1 << 20, 0o1600)), tried(libc.semget(0, 1, 0o1600)), tried(libc.msgget(0, 0o1600)),
      tried(libc.syscall(MQ_OPEN, b"tarot-q", os.O_CREAT | os.O_RDWR, 0o600, None)))
"""
)


def test_ipc_is_bounded_per_run_or_refused(
    one_helper: LocalSandbox, require_isolation: Callable[..., None]
) -> None:
    """Segments created and detached one after another would hold memory beyond the run's limit. As root
    the helper caps its IPC namespace (shared memory at the scratch's size, no POSIX queues); where it
    cannot (no root: the namespace's sysctls belong to an unmapped uid 0), programs may not create any."""
    require_isolation(one_helper, "ipc", "seccomp")
    ipc = one_helper.capabilities.get("ipc", "")
    status, stdout, detail = _run(one_helper, CREATE_EACH)
    assert status is Verdict.COMPLETED, detail
    if ipc.startswith("own namespace, limits set"):
        assert stdout.split() == ["ok", "ok", "ok", "ENOSPC"], stdout  # queues_max = 0
        code = SYSV + "print(sum(libc.shmget(0, 32 << 20, 0o1600) >= 0 for _ in range(16)))\n"
        status, stdout, detail = _run(one_helper, code)
        assert status is Verdict.COMPLETED, detail
        assert int(stdout) * 32 <= 64, stdout  # no more than the scratch's 64 MiB in all
    else:
        assert ipc.startswith("refused to programs by seccomp"), ipc
        assert stdout.split() == ["EPERM"] * 4, stdout
