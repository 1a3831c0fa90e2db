"""The sandbox helper: a small, single-threaded process that forks one child per run.

Started by `tarot_jobs.sandbox.pool` as `python -I helper.py --uid N`; it
imports only the standard library (plus `seccomp.py` beside it, loaded by
path), so it is cheap to fork. Forking the multi-threaded service itself would
be unsafe; this process never starts a thread.

Protocol on fds 0/1 (moved aside at start-up so stray prints cannot corrupt
it): frames of a 4-byte big-endian length and a JSON object. The helper first
sends {"ready": true, ...capabilities}; then for each job frame it answers one
result frame. EOF on its input means the parent is gone: it cleans up and exits.

Per run the helper (the parent of the child) enforces every limit from outside:
wall-clock time by poll() deadline, output bytes read as a stream with a cap,
and afterwards kills the child's whole process group and every descendant
that escaped it (the helper is a child subreaper, so daemonized grandchildren
are re-parented to it and found in /proc/self/task/<pid>/children). Inside the
child, before any user code runs: a new session, rlimits (address space, CPU,
processes, open files, file size, no core dumps), an unprivileged uid when the
helper is root, parent-death signal, and the seccomp filter.

With `--once` the helper runs a single job from its input and exits: the
plain-subprocess path, used when a warm helper cannot be kept.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import ctypes
import gc
import importlib.util
import io
import json
import math
import os
import random
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

# Modules user programs commonly import, loaded once here so children get them for free.
_PRELOADED = (
    "array",
    "bisect",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "operator",
    "re",
    "statistics",
    "string",
    "threading",
    "typing",
)
for _name in _PRELOADED:
    importlib.import_module(_name)

_spec = importlib.util.spec_from_file_location(
    "_tarot_sandbox_seccomp", Path(__file__).with_name("seccomp.py")
)
assert _spec is not None and _spec.loader is not None
seccomp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seccomp)

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_LIBC = ctypes.CDLL(None, use_errno=True)

_SETUP_FAILED_EXIT = 125
_SCRATCH_GONE_EXIT = 3
_READ_CHUNK = 1 << 16
_COMPILE_CACHE_SIZE = 64


# --- framing ---------------------------------------------------------------------------------


def read_frame(fd: int) -> dict[str, Any] | None:
    header = _read_exactly(fd, 4)
    if header is None:
        return None
    body = _read_exactly(fd, struct.unpack(">I", header)[0])
    if body is None:
        return None
    result: dict[str, Any] = json.loads(body)
    return result


def write_frame(fd: int, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    data = memoryview(struct.pack(">I", len(body)) + body)
    while data:
        data = data[os.write(fd, data) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# --- the helper ------------------------------------------------------------------------------


class Helper:
    def __init__(self, sandbox_uid: int, proto_in: int, proto_out: int, watch_parent: bool) -> None:
        self.pid = os.getpid()
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.watch_parent = watch_parent
        # Children drop to a uid of their own when we may, and when that uid can still read the
        # Python installation (not the case for an interpreter under a private home directory).
        self.uid_drop_blocker = self._uid_drop_blocker(sandbox_uid)
        self.drop_uid = self.uid_drop_blocker is None
        self.sandbox_uid = sandbox_uid if self.drop_uid else os.getuid()
        self.sandbox_gid = sandbox_uid if self.drop_uid else os.getgid()
        # RLIMIT_NPROC counts every task of the uid: without our own uid, leave room for the rest.
        self.nproc_base = 0 if self.drop_uid else _tasks_of_uid(os.getuid())
        self.scratch = tempfile.mkdtemp(prefix="tarot-sandbox-")
        if self.drop_uid:
            os.chown(self.scratch, self.sandbox_uid, self.sandbox_gid)
        self.seccomp_ok = seccomp.supported() and self._seccomp_works()
        self.network_filter = seccomp.PreparedFilter() if self.seccomp_ok else None
        # Opened before the mount namespace exists, this fd keeps a writable view of the scratch's
        # parent, so the helper can still remove its scratch when /tmp is read-only for it.
        # Children close it (closerange) before any user code runs.
        self._scratch_parent_fd = os.open(os.path.dirname(self.scratch), os.O_RDONLY | os.O_DIRECTORY)
        self.read_only_blocker = _make_filesystem_read_only(except_for=self.scratch)
        self.subreaper = _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        # Non-dumpable: same-uid children cannot read our /proc/<pid>/environ or ptrace us.
        _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        self._compiled: dict[tuple[str, str], Any] = {}

    def capabilities(self) -> dict[str, Any]:
        return {
            "ready": True,
            "pid": os.getpid(),
            "scratch": self.scratch,
            "seccomp": self.seccomp_ok,
            "uid_drop": self.drop_uid,
            "uid_drop_blocker": self.uid_drop_blocker,
            "sandbox_uid": self.sandbox_uid,
            "subreaper": self.subreaper,
            "read_only_filesystem": self.read_only_blocker is None,
            "read_only_filesystem_blocker": self.read_only_blocker,
        }

    @staticmethod
    def _uid_drop_blocker(uid: int) -> str | None:
        """Why children cannot run as `uid` (None: they can)."""
        if os.geteuid() != 0:
            return "the helper is not root"
        stdlib_file = os.path.join(os.path.dirname(os.__file__), "socket.py")
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                with open(stdlib_file, "rb"):
                    os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return f"an unprivileged uid cannot read the Python installation ({stdlib_file})"
        return None

    def _seccomp_works(self) -> bool:
        """Install the filter in a throwaway child and check that it blocks a TCP socket."""
        pid = os.fork()
        if pid == 0:
            try:
                seccomp.PreparedFilter().install(os.getpid())
                import socket

                try:
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                except PermissionError:
                    os._exit(0)
                os._exit(1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0

    def serve(self) -> None:
        write_frame(self.proto_out, self.capabilities())
        while (job := read_frame(self.proto_in)) is not None:
            write_frame(self.proto_out, self.run_job(job))

    def close(self) -> None:
        """Remove the scratch directory, through the fd that predates the read-only view."""
        if self.read_only_blocker is None:
            _LIBC.umount2(self.scratch.encode(), _MNT_DETACH)  # a mount point cannot be removed
        shutil.rmtree(os.path.basename(self.scratch), dir_fd=self._scratch_parent_fd, ignore_errors=True)
        os.close(self._scratch_parent_fd)

    # --- one run ---

    def _compile(self, source: str, filename: str) -> Any:
        key = (filename, source)
        code = self._compiled.get(key)
        if code is None:
            code = compile(source, filename, "exec", dont_inherit=True)
            if len(self._compiled) >= _COMPILE_CACHE_SIZE:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[key] = code
        return code

    def run_job(self, job: dict[str, Any]) -> dict[str, Any]:
        if not os.path.isdir(self.scratch):
            # Removed behind our back (a /tmp cleaner): exit, so the pool starts a fresh helper.
            os._exit(_SCRATCH_GONE_EXIT)
        try:
            program = self._compile(job["code"], "<solution>")
            tests = self._compile(job["input"], "<tests>") if job["kind"] == "function" else None
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
            return _result(
                exit_code=1,
                exception=type(exc).__name__,
                stderr="".join(traceback.format_exception_only(type(exc), exc)),
            )
        try:
            return self._supervise(job, program, tests)
        finally:
            self._clean_scratch()

    def _supervise(self, job: dict[str, Any], program: Any, tests: Any) -> dict[str, Any]:
        stdin_fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
        stdin_data = b"" if job["kind"] == "function" else job["input"].encode()
        if stdin_data:
            os.write(stdin_fd, stdin_data)  # memfd writes are never short
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)

        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child never returns
            self._child(job, program, tests, stdin_fd, out_w, err_w, status_w)
        for fd in (stdin_fd, out_w, err_w, status_w):
            os.close(fd)

        streams = {out_r: bytearray(), err_r: bytearray(), status_r: bytearray()}
        max_output = int(job["max_output_bytes"])
        timed_out = output_exceeded = parent_gone = False
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (out_r, err_r, status_r, pidfd):
            poller.register(fd, select.POLLIN)
        if self.watch_parent:
            poller.register(self.proto_in, select.POLLIN)
        deadline = start + float(job["time_limit_s"])
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                events = poller.poll(math.ceil(remaining * 1000))
                exited = False
                for fd, _ in events:
                    if fd == pidfd:
                        exited = True
                    elif fd == self.proto_in:
                        parent_gone = True
                    elif not _read_into(fd, streams[fd], poller):
                        continue
                if sum(len(buffer) for buffer in streams.values()) > max_output:
                    output_exceeded = True
                    break
                if exited or parent_gone:
                    break
            _kill_group(pid)
            _, wait_status, usage = os.wait4(pid, 0)
            wall = time.monotonic() - start
            self._kill_leftovers()
            for fd in (out_r, err_r, status_r):
                _drain(fd, streams[fd], max_output + 1)
            output_exceeded = output_exceeded or sum(len(buffer) for buffer in streams.values()) > max_output
        finally:
            for fd in (out_r, err_r, status_r, pidfd):
                os.close(fd)
        if parent_gone:
            self.close()
            os._exit(0)

        exit_code = os.waitstatus_to_exitcode(wait_status)
        # Our runner writes its line last, after all of the program's code has run.
        status_lines = streams[status_r].decode(errors="replace").strip().split("\n")
        status = status_lines[-1] if status_lines else ""
        stdout = bytes(streams[out_r][:max_output]).decode(errors="replace")
        stderr = bytes(streams[err_r][:max_output]).decode(errors="replace")
        return _result(
            exit_code=exit_code if exit_code >= 0 else None,
            signal=-exit_code if exit_code < 0 else None,
            wall_ms=wall * 1000,
            cpu_ms=(usage.ru_utime + usage.ru_stime) * 1000,
            maxrss_kb=usage.ru_maxrss,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            output_exceeded=output_exceeded,
            exception=status[4:] if status.startswith("exc:") else None,
            finished=status == "done",
            setup_error=status[6:] if status.startswith("setup:") else None,
        )

    def _kill_leftovers(self) -> None:
        """Kill and reap every remaining child (orphaned descendants are re-parented to us)."""
        children_file = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
        for _ in range(10_000):
            with open(children_file) as f:
                pids = [int(p) for p in f.read().split()]
            if not pids:
                return
            for pid in pids:
                _kill_group(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in pids:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def _clean_scratch(self) -> None:
        with os.scandir(self.scratch) as entries:
            for entry in entries:
                path = os.path.join(self.scratch, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(path)

    # --- inside the child ---

    def _child(
        self,
        job: dict[str, Any],
        program: Any,
        tests: Any,
        stdin_fd: int,
        out_w: int,
        err_w: int,
        status_w: int,
    ) -> None:
        try:
            os.setsid()
            os.dup2(stdin_fd, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.dup2(status_w, 3)
            os.closerange(4, 1 << 16)
            os.chdir(self.scratch)
            self._apply_limits(job)
            if self.drop_uid:
                os.setgroups([])
                os.setgid(self.sandbox_gid)
                os.setuid(self.sandbox_uid)
            elif os.geteuid() == 0:
                _drop_capabilities()
            # After the uid change, which clears it: die with the helper.
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != self.pid:
                os._exit(_SETUP_FAILED_EXIT)
            if self.network_filter is not None:
                self.network_filter.install(os.getpid())
            os.environ["HOME"] = os.environ["TMPDIR"] = tempfile.tempdir = self.scratch
            random.seed()
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
            sys.stderr = io.TextIOWrapper(
                io.FileIO(2, "w", closefd=False),
                encoding="utf-8",
                errors="backslashreplace",
                line_buffering=True,
            )
            sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]
            sys.argv = ["solution.py"]
        except BaseException as exc:
            os.write(3, f"setup:{type(exc).__name__}: {exc}\n".encode())
            os._exit(_SETUP_FAILED_EXIT)
        _run_user_code(program, tests)

    def _apply_limits(self, job: dict[str, Any]) -> None:
        memory = int(job["memory_limit_mb"]) << 20
        cpu = math.ceil(float(job["time_limit_s"])) + 1
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(job["max_open_files"]),) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(job["max_file_bytes"]),) * 2)
        nproc = self.nproc_base + int(job["max_processes"])
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _run_user_code(program: Any, tests: Any) -> None:
    """Run the program (then the tests) in one namespace; report how it ended on fd 3."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    status, exit_code = "done", 0
    try:
        exec(program, namespace)
        if tests is not None:
            exec(tests, namespace)
    except SystemExit as exc:
        status = "exit"
        if exc.code is None or isinstance(exc.code, int):
            exit_code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            exit_code = 1
        if tests is None and exit_code == 0:
            status = "done"  # a stdin/stdout program may end with exit(0)
    except BaseException as exc:
        status, exit_code = f"exc:{type(exc).__name__}", 1
        with contextlib.suppress(BaseException):  # printed without the helper's own frame
            traceback.print_exception(type(exc), exc, exc.__traceback__ and exc.__traceback__.tb_next)
    # What interpreter shutdown would do: join non-daemon threads, run atexit, flush.
    with contextlib.suppress(BaseException):
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.__stdout__, sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except ValueError:
            pass  # the program closed it; what it wrote was flushed then
        except BaseException:
            if status == "done":
                status, exit_code = "exc:OSError", 1
    with contextlib.suppress(BaseException):
        os.write(3, f"{status}\n".encode())
    os._exit(exit_code & 0xFF)


def _read_into(fd: int, buffer: bytearray, poller: select.poll) -> bool:
    data = os.read(fd, _READ_CHUNK)
    if not data:
        poller.unregister(fd)
        return False
    buffer += data
    return True


def _drain(fd: int, buffer: bytearray, cap: int) -> None:
    """Read what is left in a pipe whose writers are all dead, keeping at most `cap` bytes."""
    os.set_blocking(fd, False)
    while len(buffer) < cap:
        try:
            data = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            return
        buffer += data


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_NO_CAPABILITIES = (_CapHeader(0x20080522, 0), (_CapData * 2)())  # _LINUX_CAPABILITY_VERSION_3, all zero


def _drop_capabilities() -> None:
    """Root without capabilities: it cannot override file modes of others, ptrace, read other
    root processes' environment, or exceed RLIMIT_NPROC; no_new_privs keeps exec from restoring them."""
    header, data = _NO_CAPABILITIES
    if _LIBC.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


_CLONE_NEWNS = 0x00020000
_MNT_DETACH = 2
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x1, 0x20, 0x1000, 0x4000, 0x40000


def _make_filesystem_read_only(except_for: str) -> str | None:
    """Give this helper (and so its children) a private mount namespace in which every mount
    is read-only except `except_for`. Needs CAP_SYS_ADMIN; returns why not, or None when done.
    Without it (a non-root pod) the pod's read-only root filesystem plays this part."""
    if os.geteuid() != 0:
        return "the helper is not root"

    def mount(source: str | None, target: str, flags: int) -> None:
        if _LIBC.mount(source and source.encode(), target.encode(), None, flags, None) != 0:
            raise OSError(ctypes.get_errno(), f"mount {target}")

    try:
        if _LIBC.unshare(_CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        mount(None, "/", _MS_REC | _MS_PRIVATE)
        mount(except_for, except_for, _MS_BIND)
    except OSError as exc:
        return f"{exc.strerror or exc} ({exc.filename or exc.args[-1]})"
    with open("/proc/self/mountinfo") as f:
        # Field 5 is the mount point, with spaces and the like escaped in octal.
        targets = [line.split()[4].encode().decode("unicode_escape") for line in f]
    failures = []
    for target in targets:
        if target != except_for:
            try:
                mount(None, target, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
            except OSError:
                failures.append(target)
    return f"could not make read-only: {', '.join(failures)}" if "/" in failures else None


def _tasks_of_uid(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    count += len(os.listdir(os.path.join(entry.path, "task")))
            except OSError:
                pass
    return count


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _result(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "exit_code": None,
        "signal": None,
        "wall_ms": 0.0,
        "cpu_ms": 0.0,
        "maxrss_kb": 0,
        "stdout": "",
        "stderr": "",
        "timed_out": False,
        "output_exceeded": False,
        "exception": None,
        "finished": False,
        "setup_error": None,
    }
    base.update(fields)
    return base


def main(argv: list[str]) -> None:
    sandbox_uid = int(argv[argv.index("--uid") + 1]) if "--uid" in argv else 65534
    # Keep the protocol on private fds; fds 0/1 become /dev/null and stderr.
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    os.set_inheritable(proto_in, False)
    os.set_inheritable(proto_out, False)
    once = "--once" in argv
    helper = Helper(sandbox_uid, proto_in, proto_out, watch_parent=not once)
    # Everything loaded so far is shared with every child: keep the collector from touching
    # (and so copying) those pages in each child.
    gc.freeze()
    try:
        if once:
            write_frame(proto_out, helper.capabilities())
            job = read_frame(proto_in)
            if job is not None:
                write_frame(proto_out, helper.run_job(job))
        else:
            helper.serve()
    finally:
        helper.close()


if __name__ == "__main__":
    main(sys.argv)
