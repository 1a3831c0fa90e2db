"""A sandbox helper: a small, single-threaded, jailed process; the program role forks one child per run.

Started by `tarot_jobs.sandbox.pool` as `python -I helper.py --role program|checker --fd N`.
It imports only the standard library and its sibling modules (jail, seccomp,
frames, plaindata, calls: stdlib only too), never the rest of the package.
Forking the multi-threaded service itself would be unsafe; this process never
starts a thread.

Start-up (`main`): plan the jail's root from this interpreter, unshare the
namespaces (jail.py), fork the helper proper as pid 1 of the new PID
namespace, which builds the root, pivots into it, gives up its privileges
(root: an unprivileged uid of its own; otherwise: no capabilities in its user
namespace) and becomes non-dumpable. The launcher only waits: SIGKILL it and
its child dies by parent-death signal, and with pid 1 the kernel kills every
process of the namespace, daemons included. The launcher itself dies the same
way with the process that started it (`--parent`), whatever ends that one. When a namespace is refused the
helper reports which and stops, unless `--pod-boundary` says the pod itself is
the isolation boundary; then it runs with what it got and says so.

Protocol on the socket at fd N: frames (frames.py). The helper first sends
{"ready": true, "isolation": {...}} (or {"ready": false, "error": ...}); then for
each job frame it answers one result frame. End of stream: it exits.

Roles:
* program: forks a child per run; the child runs the program (stdin/stdout
  problems) or the program and then `calls.serve_calls` on the call socket
  that came with the job (function problems). The helper supervises from
  outside: wall clock by poll() deadline, output read as a stream with a cap,
  exit status, signal and resource use by wait4(), then kills everything the
  run left. It never sees a test: nothing of a test is in memory a child
  inherits.
* checker: runs function-style test code in-process (a fresh namespace per
  test, a SIGALRM deadline), calling the program through the call socket. It
  holds the tests and expected values; no program runs in its process or its
  namespaces.

With `--once` the helper runs a single job and exits: the plain-subprocess
path, used when a warm helper cannot be kept.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import ctypes
import errno
import fcntl
import gc
import importlib
import io
import math
import os
import random
import resource
import select
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
import traceback
import types
from typing import Any


def _import_siblings() -> tuple[types.ModuleType, ...]:
    """Import this directory's stdlib-only modules without running the package's __init__ files."""
    here = os.path.dirname(os.path.abspath(__file__))
    for name, path in (("tarot_jobs", os.path.dirname(here)), ("tarot_jobs.sandbox", here)):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package
    names = ("jail", "seccomp", "frames", "plaindata", "calls")
    return tuple(importlib.import_module(f"tarot_jobs.sandbox.{name}") for name in names)


jail, seccomp, frames, plaindata, calls = _import_siblings()

# Modules user programs (and tests) commonly import, loaded once here so children get them for free
# (and so they exist once the helper is inside its jail).
_PRELOADED = (
    "array",
    "bisect",
    "cmath",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "json",
    "math",
    "operator",
    "re",
    "statistics",
    "string",
    "threading",
    "typing",
)
for _name in _PRELOADED:
    importlib.import_module(_name)

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_LIBC = ctypes.CDLL(None, use_errno=True)

_SETUP_FAILED_EXIT = 125
_JAIL_REFUSED_EXIT = 3
_READ_CHUNK = 1 << 16
_MAX_JOB_BYTES = 1 << 30
_CHECKER_MEMORY = 4 << 30
_READY = b"\x00"
_COMPILED_PROGRAMS = 16  # a request's tests run one after another on the helpers: compile each once
# A longer program is compiled in its child, inside its own time limit: compiling megabytes of source
# takes seconds, which in the helper would count against no limit and could outlast the reply deadline.
_COMPILE_IN_HELPER_MAX_CHARS = 1 << 16
_FD_STDIN, _FD_STDOUT, _FD_STDERR, _FD_CALLS, _FD_READY = 0, 1, 2, 3, 4


# --- the program role --------------------------------------------------------------------------


class ProgramHelper:
    def __init__(self, sock: socket.socket, isolation: dict[str, Any], scratch: str, once: bool) -> None:
        self.sock = sock
        self.isolation = isolation
        self.scratch = scratch
        self.once = once
        self.pid = os.getpid()
        self.pid_namespace = "pid" in isolation["namespaces"]
        self.fallback_uid: int | None = isolation.pop("_fallback_uid", None)
        self.nproc_base: int = isolation.pop("_nproc_base")
        if not self.pid_namespace:
            _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # IPC objects are for programs only in an IPC namespace of our own whose limits we set (as root);
        # elsewhere the filter refuses to create them (they could hold memory beyond the run's limits, and
        # outlive it where the namespace is not ours).
        ipc_allowed: bool = isolation.pop("_ipc_allowed")
        self.network_filter = seccomp.PreparedFilter(ipc=ipc_allowed) if isolation["seccomp"] else None
        # In a namespace of its own every SysV object is a run's; in the host's, none is ours to remove.
        self.own_ipc = "ipc" in isolation["namespaces"]
        self.retired = False
        self._programs: dict[str, Any] = {}

    def serve(self) -> None:
        frames.send_frame(self.sock, {"ready": True, "role": "program", "isolation": self.isolation})
        while (received := frames.recv_frame(self.sock, _MAX_JOB_BYTES)) is not None:
            job, fds = received
            try:
                reply = self.run_job(job, fds[0] if fds else None)
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            frames.send_frame(self.sock, reply)
            if self.once or self.retired:
                return

    def run_job(self, job: dict[str, Any], calls_fd: int | None) -> dict[str, Any]:
        reply = self._supervise(job, calls_fd)
        # Every process of the run is dead: what it left is the run's, and goes now. What cannot be
        # cleared was made so by the program: its failure, and this helper is not used again.
        try:
            _clear_scratch(self.scratch)
            if self.own_ipc:
                _remove_sysv_ipc()
        except (OSError, RecursionError) as exc:
            reply["cleanup_error"] = f"{type(exc).__name__}: {exc}"[:300]
            self.retired = True
        return reply

    def _compiled(self, source: str) -> Any:
        """The program compiled once for all its tests (None when it does not compile: the child
        compiles it again and reports the error as the program's). Holds programs, never tests."""
        if len(source) > _COMPILE_IN_HELPER_MAX_CHARS:
            return None
        if source not in self._programs:
            try:
                code = compile(source, "<solution>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
                code = None
            if len(self._programs) >= _COMPILED_PROGRAMS:
                self._programs.pop(next(iter(self._programs)))
            self._programs[source] = code
        return self._programs[source]

    def _supervise(self, job: dict[str, Any], calls_fd: int | None) -> dict[str, Any]:
        program = self._compiled(job["code"])
        stdin_fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
        stdin_data = job.get("input", "").encode()
        if stdin_data:
            os.write(stdin_fd, stdin_data)  # memfd writes are never short
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)

        start = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child never returns
            self._child(job, program, stdin_fd, out_w, err_w, ready_w, calls_fd)
        for fd in (stdin_fd, out_w, err_w, ready_w):
            os.close(fd)
        if calls_fd is not None:
            os.close(calls_fd)  # the child has it; our copy would hide the program's end of stream

        streams = {out_r: bytearray(), err_r: bytearray(), ready_r: bytearray()}
        max_output = int(job["max_output_bytes"])
        timed_out = output_exceeded = parent_gone = False
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (out_r, err_r, ready_r, pidfd):
            poller.register(fd, select.POLLIN)
        if not self.once:
            poller.register(self.sock.fileno(), select.POLLIN)
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
                    elif fd == self.sock.fileno():
                        parent_gone = True
                    else:
                        _read_into(fd, streams[fd], poller)
                if len(streams[out_r]) + len(streams[err_r]) > max_output:
                    output_exceeded = True
                    break
                if exited or parent_gone:
                    break
            _kill_group(pid)
            _, wait_status, usage = os.wait4(pid, 0)
            wall = time.monotonic() - start
            self._kill_leftovers()
            for fd in (out_r, err_r, ready_r):
                _drain(fd, streams[fd], max_output + 1)
            output_exceeded = output_exceeded or len(streams[out_r]) + len(streams[err_r]) > max_output
        finally:
            for fd in (out_r, err_r, ready_r, pidfd):
                os.close(fd)
        if parent_gone:
            os._exit(0)

        exit_code = os.waitstatus_to_exitcode(wait_status)
        # The ready pipe is written and closed before any of the program's code runs: what is on it
        # is ours, and its absence means the program never started.
        ready = bytes(streams[ready_r])
        setup_error = None
        if ready != _READY:
            setup_error = ready.decode(errors="replace")[6:] or "the child died before the program started"
        return {
            "exit_code": exit_code if exit_code >= 0 else None,
            "signal": -exit_code if exit_code < 0 else None,
            "wall_ms": wall * 1000,
            "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
            "maxrss_kb": usage.ru_maxrss,
            "stdout": bytes(streams[out_r][:max_output]).decode(errors="replace"),
            "stderr": bytes(streams[err_r][:max_output]).decode(errors="replace"),
            "timed_out": timed_out,
            "output_exceeded": output_exceeded,
            "setup_error": setup_error,
        }

    def _kill_leftovers(self) -> None:
        """Kill and reap every process the run left (daemons, forks), whatever their group."""
        if self.pid_namespace:
            # We are pid 1 of this namespace: kill(-1) reaches every other process in it, and
            # orphans are re-parented to us, so waiting until there is no child leaves nothing.
            while True:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, signal.SIGKILL)
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    return
        children_file = f"/proc/{self.pid}/task/{self.pid}/children"
        for _ in range(10_000):  # a child subreaper: escaped descendants are re-parented to us
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

    # --- inside the child ---

    def _child(
        self,
        job: dict[str, Any],
        program: Any,
        stdin_fd: int,
        out_w: int,
        err_w: int,
        ready_w: int,
        calls_fd: int | None,
    ) -> None:
        try:
            os.setsid()
            wanted = {_FD_STDIN: stdin_fd, _FD_STDOUT: out_w, _FD_STDERR: err_w, _FD_READY: ready_w}
            if calls_fd is not None:
                wanted[_FD_CALLS] = calls_fd
            # Move the sources above the targets first, so that no dup2 overwrites a source still needed.
            high = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 64) for target, source in wanted.items()}
            for target, source in high.items():
                os.dup2(source, target)
            if calls_fd is None:
                with contextlib.suppress(OSError):
                    os.close(_FD_CALLS)
            os.closerange(_FD_READY + 1, 1 << 16)
            os.chdir(self.scratch)
            self._apply_limits(job)
            if self.fallback_uid is not None:
                os.setgroups([])
                os.setgid(self.fallback_uid)
                os.setuid(self.fallback_uid)
            elif os.geteuid() == 0 and self.isolation["uid"] != "own":
                _drop_capabilities()
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if not self.pid_namespace and os.getppid() != self.pid:
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
            os.write(_FD_READY, _READY)
            os.close(_FD_READY)
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(_FD_READY, f"setup:{type(exc).__name__}: {exc}".encode())
            os._exit(_SETUP_FAILED_EXIT)
        _run_program(job, program, calls_fd is not None)

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


def _run_program(job: dict[str, Any], program: Any, function_style: bool) -> None:
    """Run the program; a function-style one then answers the checker's calls. Never returns."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    exit_code = 0
    try:
        # Compiled in the helper when it could be; otherwise compiling here raises the program's error.
        exec(program or compile(job["code"], "<solution>", "exec", dont_inherit=True), namespace)
        if function_style:
            calls.serve_calls(_FD_CALLS, namespace, int(job["max_output_bytes"]))
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            exit_code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            exit_code = 1
    except BaseException as exc:
        exit_code = 1
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
            exit_code = exit_code or 1
    os._exit(exit_code & 0xFF)


# --- the checker role --------------------------------------------------------------------------


class _CheckTimeout(BaseException):
    pass


def _on_alarm(*_: Any) -> None:
    raise _CheckTimeout


class CheckerHelper:
    def __init__(self, sock: socket.socket, isolation: dict[str, Any], once: bool) -> None:
        self.sock = sock
        self.isolation = isolation
        self.once = once
        self.recursion_limit = sys.getrecursionlimit()
        self._compiled: dict[tuple[str, str], Any] = {}  # the same tests run for every sample
        signal.signal(signal.SIGALRM, _on_alarm)

    def _compile(self, source: str, filename: str) -> Any:
        key = (filename, source)
        if key not in self._compiled:
            if len(self._compiled) >= _COMPILED_PROGRAMS * 4:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[key] = compile(source, filename, "exec", dont_inherit=True)
        return self._compiled[key]

    def serve(self) -> None:
        frames.send_frame(self.sock, {"ready": True, "role": "checker", "isolation": self.isolation})
        while (received := frames.recv_frame(self.sock, _MAX_JOB_BYTES)) is not None:
            job, fds = received
            try:
                reply = self.run_job(job, fds)
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            frames.send_frame(self.sock, reply)
            if self.once:
                return

    def run_job(self, job: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        if len(fds) != 1:
            return {"outcome": "error", "error": "CheckerError", "detail": "no call socket came with the job"}
        sock = socket.socket(fileno=os.dup(fds[0]))
        channel = calls.Channel(sock, int(job["max_reply_bytes"]))
        namespace = calls.TestNamespace(channel)
        start = time.monotonic()
        outcome: dict[str, Any]
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = io.StringIO()  # what tests print is not part of the verdict
        try:
            signal.setitimer(signal.ITIMER_REAL, float(job["time_limit_s"]))
            if job.get("prelude"):
                exec(self._compile(job["prelude"], "<prelude>"), namespace)
            namespace[job["entry_point"]] = calls.RemoteObject(channel, ("g", job["entry_point"]))
            exec(self._compile(job["tests"], "<tests>"), namespace)
            outcome = {"outcome": "passed"}
        except _CheckTimeout:
            outcome = {"outcome": "timeout"}
        except calls.ProgramFault as fault:
            outcome = {"outcome": "program", "detail": str(fault)[:300]}
        except AssertionError as exc:
            outcome = {"outcome": "failed", "detail": _failed_line(exc)}
        except BaseException as exc:
            outcome = {"outcome": "error", "error": type(exc).__name__, "detail": str(exc)[:300]}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout, sys.stderr = saved
            sock.close()  # the program's end of stream: it exits
            calls.reset_interpreter_state(self.recursion_limit)
        if channel.fault is not None and outcome["outcome"] != "timeout":
            # The program misbehaved on the channel; a test that swallowed the fault did not pass.
            outcome = {"outcome": "program", "detail": channel.fault[:300]}
        outcome["calls"] = channel.calls
        outcome["wall_ms"] = (time.monotonic() - start) * 1000
        return outcome


def _failed_line(exc: AssertionError) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f"line {frame[0].lineno} of the test" if frame and frame[0].filename == "<tests>" else "the test"
    return f"an assertion failed at {where}" + (f": {str(exc)[:200]}" if str(exc) else "")


# --- shared helpers ----------------------------------------------------------------------------


def _read_into(fd: int, buffer: bytearray, poller: select.poll) -> None:
    data = os.read(fd, _READ_CHUNK)
    if data:
        buffer += data
    else:
        poller.unregister(fd)


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


def _clear_scratch(path: str) -> None:
    """Make the scratch directory as a fresh one: empty, mode 0700, no xattr or ACL, times zero.

    Whatever the run did: directories of mode 000, trees deeper than PATH_MAX (each directory's
    subdirectories are moved up to the top before it is removed, so no path or fd stack grows),
    symlinks (never followed). The helper owns the directory and everything the run made in it."""
    os.chmod(path, 0o700)
    for name in os.listxattr(path, follow_symlinks=False):
        os.removexattr(path, name, follow_symlinks=False)
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        moved = 0
        while names := os.listdir(top):
            for name in names:
                if not stat.S_ISDIR(os.stat(name, dir_fd=top, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=top)
                    continue
                os.chmod(name, 0o700, dir_fd=top)
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
                try:
                    for child in os.listdir(inner):
                        if stat.S_ISDIR(os.stat(child, dir_fd=inner, follow_symlinks=False).st_mode):
                            os.chmod(child, 0o700, dir_fd=inner)
                            moved = _move_up(inner, child, top, moved)
                        else:
                            os.unlink(child, dir_fd=inner)
                finally:
                    os.close(inner)
                os.rmdir(name, dir_fd=top)
        os.utime(top, ns=(0, 0))
    finally:
        os.close(top)


def _move_up(source_fd: int, name: str, top_fd: int, counter: int) -> int:
    """Rename directory `name` into the top directory under a name not taken there; the next counter."""
    while True:
        counter += 1
        try:
            os.rename(name, f".tarot-{counter}", src_dir_fd=source_fd, dst_dir_fd=top_fd)
            return counter
        except OSError as exc:  # the program took that name: the next one
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise


# System V IPC: (ctl function, its argument count, *_INFO, *_STAT_ANY (any mode), IPC_RMID).
_IPC_RMID = 0
_SYSV_KINDS = (("shmctl", 3, 14, 15), ("semctl", 4, 19, 20), ("msgctl", 3, 12, 13))
_IPC_BUFFER = ctypes.create_string_buffer(512)  # larger than shmid_ds, semid_ds, msqid_ds and *info


def _remove_sysv_ipc() -> None:
    """Remove every shared memory segment, semaphore set and message queue of our IPC namespace."""
    for function_name, arity, info, stat_any in _SYSV_KINDS:
        function = getattr(_LIBC, function_name)

        def ctl(key: int, command: int, function: Any = function, arity: int = arity) -> int:
            args = (key, 0, command, _IPC_BUFFER) if arity == 4 else (key, command, _IPC_BUFFER)
            return int(function(*args))

        highest = ctl(0, info)
        if highest < 0:
            raise OSError(ctypes.get_errno(), f"{function_name}(*_INFO) failed")
        for index in range(highest + 1):
            ident = ctl(index, stat_any)
            if ident >= 0 and ctl(ident, _IPC_RMID) != 0:
                raise OSError(ctypes.get_errno(), f"{function_name}(IPC_RMID) of a run's object failed")


def _cap_ipc_namespace(scratch_mb: int) -> str:
    """Bound what SysV IPC can hold in our own IPC namespace (shared memory counts like scratch) and
    close POSIX message queues, which cannot be listed to be removed. Needs our namespace's /proc."""
    limits = {
        "kernel/shmall": str(scratch_mb << 8),  # in 4 KiB pages
        "kernel/shmmni": "64",
        "kernel/shm_rmid_forced": "1",  # a segment goes with the last process attached to it
        "kernel/msgmni": "64",
        "kernel/sem": "32000 65536 500 64",  # per set, in all, per semop, sets
        "fs/mqueue/queues_max": "0",
    }
    try:
        for name, value in limits.items():
            with open(f"/proc/sys/{name}", "w") as f:
                f.write(value)
    except OSError as exc:
        return str(exc.strerror or exc)
    return "capped"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_NO_CAPABILITIES = (_CapHeader(0x20080522, 0), (_CapData * 2)())  # _LINUX_CAPABILITY_VERSION_3, all zero
_PR_SET_NO_NEW_PRIVS = 38


def _drop_capabilities() -> None:
    """No capabilities (in whatever user namespace we are in); no_new_privs keeps exec from restoring any."""
    if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    header, data = _NO_CAPABILITIES
    if _LIBC.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


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


def _interpreter_readable_by(uid: int) -> bool:
    """Whether `uid` can read this Python installation from where it is (not under a private home)."""
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
    return os.waitstatus_to_exitcode(status) == 0


def _seccomp_works() -> bool:
    """Install the filter in a throwaway child and check that it blocks a TCP socket."""
    if not seccomp.supported():
        return False
    pid = os.fork()
    if pid == 0:
        try:
            seccomp.PreparedFilter().install(os.getpid())
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except PermissionError:
                os._exit(0)
            os._exit(1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


# --- start-up ----------------------------------------------------------------------------------


class _Options:
    def __init__(self, argv: list[str]) -> None:
        def value(flag: str, default: str) -> str:
            return argv[argv.index(flag) + 1] if flag in argv else default

        self.role = value("--role", "program")
        self.fd = int(value("--fd", "-1"))
        self.uid = int(value("--uid", "65534"))
        self.scratch_mb = int(value("--scratch-mb", "64"))
        self.once = "--once" in argv
        self.parent = int(value("--parent", "0"))
        self.pod_boundary = "--pod-boundary" in argv
        self.packages = dict(
            item.split("=", 1) for i, item in enumerate(argv) if i and argv[i - 1] == "--package"
        )


def _refuse(sock: socket.socket, error: str, mountpoint: str | None = None) -> None:
    frames.send_frame(sock, {"ready": False, "error": error})
    if mountpoint is not None:
        with contextlib.suppress(OSError):
            os.rmdir(mountpoint)
    os._exit(_JAIL_REFUSED_EXIT)


def _refuse_unless_isolated(
    options: _Options,
    sock: socket.socket,
    namespaces: Any,
    as_root: bool,
    names: tuple[str, ...],
    mountpoint: str,
) -> None:
    """Stop, saying which namespaces were refused, unless the pod is declared the boundary."""
    missing = [name for name in names if name in namespaces.refused and not (as_root and name == "user")]
    if missing and not options.pod_boundary:
        _refuse(
            sock,
            "the sandbox jail needs namespaces the kernel or container runtime refused: "
            + "; ".join(namespaces.refused[name] for name in missing)
            + ". If the pod itself is the isolation boundary (no data, no token, no egress), start the"
            " sandbox with --pod-boundary (TAROT_SANDBOX_POD_BOUNDARY=1).",
            mountpoint,
        )


def main(argv: list[str]) -> None:
    options = _Options(argv)
    # Whatever ends the process that started us (SIGKILL included) ends us, and with us the jail (our
    # child is pid 1 of its namespace and dies with us by the same signal). The parent may be gone already.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if options.parent and os.getppid() != options.parent:
        os._exit(1)
    if options.role == "program":
        # When memory runs out, the kernel picks a process of a run (they all inherit this), never the
        # checker or the service: a run that exhausts memory is killed as itself, not dropped with others.
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    sock = socket.socket(fileno=options.fd)
    # fds 0/1 become /dev/null and stderr: a stray print cannot reach anything.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    as_root = os.geteuid() == 0
    seccomp_ok = _seccomp_works()
    plan = jail.plan_root(options.packages, options.scratch_mb)
    sys.executable = os.path.realpath(sys.executable)  # the path the jail shows
    newroot = tempfile.mkdtemp(prefix="tarot-jail-")
    launcher_namespaces = tuple(name for name in jail.NAMESPACES if name != "mnt")
    namespaces = jail.enter_namespaces(launcher_namespaces, as_root=as_root)
    _refuse_unless_isolated(options, sock, namespaces, as_root, launcher_namespaces, newroot)
    if "pid" in namespaces.entered:
        child = os.fork()
        if child == 0:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            _inner(options, sock, namespaces, plan, newroot, as_root, seccomp_ok)
            os._exit(0)
        # The launcher: outside the namespace, it only waits. Killing it kills the whole jail.
        sock.close()
        _, status = os.waitpid(child, 0)
        with contextlib.suppress(OSError):
            os.rmdir(newroot)
        os._exit(max(0, os.waitstatus_to_exitcode(status)))
    try:
        _inner(options, sock, namespaces, plan, newroot, as_root, seccomp_ok)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(newroot)


def _inner(
    options: _Options,
    sock: socket.socket,
    namespaces: Any,
    plan: Any,
    newroot: str,
    as_root: bool,
    seccomp_ok: bool,
) -> None:
    """Build the root, give up privileges and serve (the helper proper, pid 1 of its namespace)."""
    jail.enter_namespaces(("mnt",), as_root=as_root, into=namespaces)
    # Only the launcher (if there is one) may remove the mount point: here it becomes our root.
    _refuse_unless_isolated(options, sock, namespaces, as_root, ("mnt",), newroot)
    entered = [name for name in jail.NAMESPACES if name in namespaces.entered]
    own_uid = options.uid if as_root else None
    isolation: dict[str, Any] = {
        "namespaces": entered,
        "refused": dict(namespaces.refused),
        "pod_boundary": options.pod_boundary,
        "seccomp": seccomp_ok,
        "packages": sorted(options.packages),
        "mountpoint": newroot,  # on the host: whoever outlives the helper removes it
    }
    try:
        if "mnt" in entered:
            isolation.update(
                jail.build_root(plan, newroot, scratch_owner=(own_uid, own_uid) if own_uid else None)
            )
            isolation["root"] = "minimal"
            scratch = plan.scratch
            sys.path[:] = [p for p in sys.path if os.path.isdir(p) and os.path.realpath(p) not in plan.hidden]
            if plan.packages:
                sys.path.append(jail.PACKAGES_DIR)
            sys.meta_path[:] = [f for f in sys.meta_path if f.__module__.startswith("_frozen_importlib")]
            # Our own modules stay loaded (the helper uses them) but are not importable by programs.
            for name in [n for n in sys.modules if n == "tarot_jobs" or n.startswith("tarot_jobs.")]:
                del sys.modules[name]
            sys.path_importer_cache.clear()
            importlib.invalidate_caches()
        else:
            isolation["root"] = "host"
            isolation["proc"] = "host"
            # Only the program role runs anything in a scratch directory.
            scratch = tempfile.mkdtemp(prefix="tarot-sandbox-") if options.role == "program" else "/"
        if "uts" in entered:
            jail.set_hostname("sandbox")
        # Per run: the helper removes every SysV object a run left (in its own IPC namespace), whose
        # limits it sets when it may; where it may not, programs may not create IPC objects at all.
        if options.role == "program":
            ipc_capped = _cap_ipc_namespace(options.scratch_mb) if "ipc" in entered else "not our namespace"
            isolation["_ipc_allowed"] = ipc_capped == "capped"
            if ipc_capped == "capped":
                isolation["ipc"] = "own namespace, limits set, cleared after every run"
            elif seccomp_ok:
                isolation["ipc"] = f"refused to programs by seccomp (limits not settable: {ipc_capped})"
            else:
                isolation["ipc"] = f"open, limits not settable: {ipc_capped}" + (
                    "; cleared after every run" if "ipc" in entered else ""
                )
        fallback_uid = None
        if as_root and "mnt" in entered:
            # The root shows the interpreter to any uid: drop to one of our own for good.
            os.setgroups([])
            os.setgid(options.uid)
            os.setuid(options.uid)
            _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            isolation["uid"] = "own"
        elif "user" in entered:
            _drop_capabilities()
            isolation["uid"] = "own"  # RLIMIT_NPROC counts per user namespace
        elif as_root and options.role == "program" and _interpreter_readable_by(options.uid):
            os.chown(scratch, options.uid, options.uid)
            fallback_uid = options.uid  # the children drop to it
            isolation["uid"] = "own"
        elif as_root and options.role == "checker":
            _drop_capabilities()  # test code never runs with root's capabilities
            isolation["uid"] = "shared"
        else:
            isolation["uid"] = "shared"
        _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)  # a same-uid process cannot read our memory or environ
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # again: a uid change cleared it
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as pid 1, a signal without a handler is ignored
    except OSError as exc:
        _refuse(sock, f"building the sandbox jail failed: {exc}")
    if options.role == "checker":
        resource.setrlimit(resource.RLIMIT_AS, (_CHECKER_MEMORY, _CHECKER_MEMORY))
        if seccomp_ok:
            seccomp.PreparedFilter().install(os.getpid())
        gc.freeze()
        CheckerHelper(sock, isolation, options.once).serve()
        return
    if isolation["uid"] == "own":
        # Tasks of our uid before any run: ours, and the launcher's when it shares our user namespace.
        isolation["_nproc_base"] = 2 if "user" in entered else 1
    else:
        isolation["_nproc_base"] = _tasks_of_uid(os.getuid())
    isolation["_fallback_uid"] = fallback_uid
    helper = ProgramHelper(sock, isolation, scratch, options.once)
    # Everything loaded so far is shared with every child: keep the collector from touching
    # (and so copying) those pages in each child.
    gc.freeze()
    try:
        helper.serve()
    finally:
        if isolation["root"] == "host":
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
