"""A pool of jailed sandbox helpers, one pair per worker thread, fed from one queue of runs.

Each worker thread owns a program helper and (from its first function-style
run) a checker helper (`helper.py`), and sends them one run at a time; the
thread only blocks on sockets, so the GIL is free for the others. For a
function-style run the thread makes a socket pair and hands one end to each
helper: the checker calls the program's function through it.

The thread is the supervisor of both helpers: a helper that dies, hangs or
breaks the protocol is killed and replaced. Blame goes by cause (`_execute`):
a program helper's failure, or a helper that never got the job, makes the run
a `sandbox_error` (an infrastructure failure, never a wrong answer; the
program's code never runs in that process); a checker that fails once it
holds the job failed on the program's data, and a scratch the program left
uncleanable is the program's doing: both are the program's failure, and the
helper is replaced before the next run.
When no warm helper can be started, each run gets fresh one-shot helpers
instead: the plain-subprocess path, paying interpreter start-up.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tarot_jobs.sandbox import frames

HELPER_SCRIPT = Path(__file__).with_name("helper.py")
FORKSERVER_PATH = "forkserver"
SUBPROCESS_PATH = "subprocess"
# Beyond the run's own time limit: fork, kill, reap and drain.
REPLY_GRACE_S = 10.0
# Beyond its own SIGALRM deadline, a checker still busy is stuck in C code on the program's data.
CHECKER_GRACE_S = 3.0
# This many infrastructure failures in a row, with no run carried out between them: the helpers
# cannot run programs (/healthz says so).
FAILING_AFTER = 3
_START_TIMEOUT_S = 30.0
_MAX_REPLY_BYTES = 1 << 30
# The helper and its children see only this environment, never the service's.
_HELPER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
POD_BOUNDARY_ENV = "TAROT_SANDBOX_POD_BOUNDARY"
DEFAULT_PACKAGES = ("numpy",)


class HelperError(RuntimeError):
    """The helper process died, hung, broke the protocol, or could not build its jail."""


@dataclass(frozen=True)
class JailOptions:
    """How helpers are jailed.

    `pod_boundary`: run with whatever namespaces the kernel grants, saying which
    were refused, instead of refusing to run (only where the pod itself is the
    boundary: it mounts no data, holds no token and has no egress).
    `packages`: import names of installed packages programs may import besides
    the standard library (shown read-only in the jail; default numpy, which
    competitive-programming solutions, TAROT's among them, use; a name that is
    not installed is left out).
    """

    pod_boundary: bool = False
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    scratch_mb: int = 64

    @classmethod
    def from_environment(cls) -> JailOptions:
        return cls(pod_boundary=os.environ.get(POD_BOUNDARY_ENV, "") not in ("", "0", "false"))

    def arguments(self) -> list[str]:
        arguments = ["--scratch-mb", str(self.scratch_mb)]
        if self.pod_boundary:
            arguments.append("--pod-boundary")
        for name in self.packages:
            path = _package_path(name)
            if path is not None:
                arguments += ["--package", f"{name}={path}"]
        return arguments


def _package_path(name: str) -> str | None:
    """Where the installed package `name` lives (its directory, or its module file); None if absent."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        return None
    origin = Path(spec.origin)
    return str(origin.parent if origin.name == "__init__.py" else origin)


def isolation_label(isolation: dict[str, Any]) -> str:
    """e.g. `jail(user,mnt,pid,net,ipc,uts)`, or `pod-boundary(refused:user,mnt,...)`."""
    if not isolation:
        return "unknown"
    if isolation.get("refused"):
        return f"pod-boundary(refused:{','.join(isolation['refused'])})"
    return f"jail({','.join(isolation.get('namespaces', []))})"


def isolation_features(isolation: dict[str, Any]) -> set[str]:
    """What the helpers' isolation provides: the namespaces entered, plus `minimal-root`,
    `private-proc`, `own-uid` and `seccomp` when in effect (tests assert on these)."""
    features = set(isolation.get("namespaces", []))
    for feature, present in (
        ("minimal-root", isolation.get("root") == "minimal"),
        ("private-proc", isolation.get("proc") == "private"),
        ("own-uid", isolation.get("uid") == "own"),
        ("seccomp", bool(isolation.get("seccomp"))),
    ):
        if present:
            features.add(feature)
    return features


def _sandbox_uid() -> int:
    """A uid of its own per helper (used when root), so children of different helpers are strangers."""
    return random.randrange(100_000, 1_000_000_000)


class HelperProcess:
    """One helper (launcher + jailed helper) and the framed protocol spoken with it."""

    def __init__(self, role: str, jail: JailOptions, *, once: bool = False) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        command = [
            sys.executable,
            "-I",
            str(HELPER_SCRIPT),
            "--role",
            role,
            "--fd",
            str(theirs.fileno()),
            "--uid",
            str(_sandbox_uid()),
            # The helper dies with us (parent-death signal). That signal follows the thread that forked it:
            # helpers are started only by the worker threads, which close them before they end.
            "--parent",
            str(os.getpid()),
            *jail.arguments(),
        ]
        try:
            self._process = subprocess.Popen(
                [*command, "--once"] if once else command,
                stdin=subprocess.DEVNULL,
                env=_HELPER_ENV,
                start_new_session=True,
                close_fds=True,
                pass_fds=[theirs.fileno()],
            )
        finally:
            theirs.close()
        self.pid = self._process.pid
        try:
            ready, _ = self._read(time.monotonic() + _START_TIMEOUT_S)
        except HelperError:
            self.close()
            raise
        if not ready.get("ready"):
            self.close()
            raise HelperError(str(ready.get("error", "the helper did not start")))
        self.isolation: dict[str, Any] = ready.get("isolation", {})
        self._mountpoint = self.isolation.pop("mountpoint", None)

    def send(self, job: dict[str, Any], fds: list[int] | None = None, *, deadline: float) -> None:
        self._sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            frames.send_frame(self._sock, job, fds)
        except OSError as exc:
            raise HelperError(f"could not send the job: {exc}") from exc

    def receive(self, deadline: float) -> dict[str, Any]:
        message, fds = self._read(deadline)
        for fd in fds:
            os.close(fd)
        return message

    def run(self, job: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + float(job["time_limit_s"]) + REPLY_GRACE_S
        self.send(job, fds, deadline=deadline)
        return self.receive(deadline)

    def alive(self) -> bool:
        return self._process.poll() is None

    def close(self, *, now: bool = False) -> None:
        """Ask the helper to exit (end of stream); kill it if it does not go quickly (`now`: at once,
        for a helper known to be stuck)."""
        with contextlib.suppress(OSError):
            self._sock.close()
        try:
            if now:
                raise subprocess.TimeoutExpired(self._process.args, 0)
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # The (empty) directory the jail's root was mounted on, if the helper's launcher was killed
        # before it could remove it; while any jail still uses it, rmdir fails and leaves it.
        if getattr(self, "_mountpoint", None):
            with contextlib.suppress(OSError):
                os.rmdir(self._mountpoint)

    def _read(self, deadline: float) -> tuple[dict[str, Any], list[int]]:
        self._sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            received = frames.recv_frame(self._sock, _MAX_REPLY_BYTES)
        except TimeoutError as exc:
            raise HelperError("the helper did not answer in time") from exc
        except frames.FrameError as exc:
            raise HelperError(f"the helper sent a malformed frame: {exc}") from exc
        except OSError as exc:
            raise HelperError(f"the helper's socket failed: {exc}") from exc
        if received is None:
            raise HelperError(f"the helper exited (code {self._process.poll()})")
        return received


def sandbox_error(detail: str) -> dict[str, Any]:
    """A raw result for a run the infrastructure could not carry out."""
    return {"sandbox_error": detail}


@dataclass
class _Helpers:
    """The helpers one worker thread owns."""

    program: HelperProcess | None = None
    checker: HelperProcess | None = None

    def close(self) -> None:
        for helper in (self.program, self.checker):
            if helper is not None:
                helper.close()
        self.program = self.checker = None


class ExecutorPool:
    """Runs raw jobs ({"program": ..., "checker": ... | None}) on `workers` helper pairs."""

    def __init__(self, workers: int, *, fast: bool = True, jail: JailOptions | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers: must be at least 1, got {workers}")
        self.workers = workers
        self.fast = fast
        self.jail = jail or JailOptions.from_environment()
        self.fast_path_error: str | None = None
        self.capabilities: dict[str, Any] = {}
        self._failures_in_a_row = 0
        self.last_failure: str | None = None
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[dict[str, Any]]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._queued = 0
        self._running = 0
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def failing(self) -> str | None:
        """Why the helpers cannot run programs: the last infrastructure failure, once FAILING_AFTER
        came in a row with no run carried out since; None while runs are carried out."""
        return self.last_failure if self._failures_in_a_row >= FAILING_AFTER else None

    def _record(self, result: dict[str, Any]) -> None:
        with self._lock:
            if "sandbox_error" in result:
                self._failures_in_a_row += 1
                self.last_failure = str(result["sandbox_error"])
            else:
                self._failures_in_a_row = 0

    @property
    def running(self) -> int:
        return self._running

    def submit(self, job: dict[str, Any]) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor pool is closed")
            if not self._threads:
                self._start_threads()
            self._queued += 1
        self._queue.put((job, future))
        return future

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = self._threads
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _start_threads(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"sandbox-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        helpers = _Helpers()
        try:
            while (item := self._queue.get()) is not None:
                job, future = item
                with self._lock:
                    self._queued -= 1
                    self._running += 1
                try:
                    if future.set_running_or_notify_cancel():
                        result = self._run(job, helpers)
                        self._record(result)
                        future.set_result(result)
                except Exception as exc:  # a bug here must not leave a caller waiting forever
                    if not future.done():
                        future.set_result(sandbox_error(f"sandbox pool error: {type(exc).__name__}: {exc}"))
                finally:
                    with self._lock:
                        self._running -= 1
        finally:
            helpers.close()

    def _warm(self, role: str, current: HelperProcess | None) -> HelperProcess | None:
        """The warm helper of `role` (started when missing); None: use one-shot helpers."""
        if not self.fast or self.fast_path_error is not None:
            return None
        if current is not None:
            return current
        try:
            helper = HelperProcess(role, self.jail)
        except (HelperError, OSError) as exc:
            self.fast_path_error = f"warm helper unavailable, using a subprocess per run: {exc}"
            return None
        if role == "program":
            self.capabilities = {"pid": helper.pid, **helper.isolation}
        return helper

    def _run(self, job: dict[str, Any], helpers: _Helpers) -> dict[str, Any]:
        helpers.program = self._warm("program", helpers.program)
        if job.get("checker") is not None:
            helpers.checker = self._warm("checker", helpers.checker)
        warm = helpers.program is not None and (job.get("checker") is None or helpers.checker is not None)
        if warm:
            assert helpers.program is not None
            result = _execute(job, helpers.program, helpers.checker)
            if not helpers.program.alive() or result.get("_program_broken"):
                helpers.program.close()
                helpers.program = None
            if helpers.checker is not None and (not helpers.checker.alive() or result.get("_checker_broken")):
                helpers.checker.close()
                helpers.checker = None
            path = FORKSERVER_PATH
        else:
            result = self._run_once(job)
            path = SUBPROCESS_PATH
        result.pop("_program_broken", None)
        result.pop("_checker_broken", None)
        label = isolation_label(self.capabilities)
        return {**result, "path": f"{path}+{label}"}

    def _run_once(self, job: dict[str, Any]) -> dict[str, Any]:
        started: list[HelperProcess] = []
        try:
            program = HelperProcess("program", self.jail, once=True)
            started.append(program)
            self.capabilities = self.capabilities or {"pid": program.pid, **program.isolation}
            checker = None
            if job.get("checker") is not None:
                checker = HelperProcess("checker", self.jail, once=True)
                started.append(checker)
        except (HelperError, OSError) as exc:
            for helper in started:
                helper.close()
            return sandbox_error(f"could not start a sandbox process: {exc}")
        try:
            return _execute(job, program, checker)
        finally:
            for helper in started:
                helper.close()


def _hand_over(
    helper: HelperProcess,
    job: dict[str, Any],
    end: socket.socket,
    deadline: float,
    result: dict[str, Any],
    role: str,
    broken_flag: str,
) -> bool:
    """Send `job` with its end of the call socket (closed here either way); on failure mark `result`."""
    try:
        helper.send(job, [end.fileno()], deadline=deadline)
        return True
    except HelperError as exc:
        result.update(sandbox_error(f"sandbox {role} failed: {exc}"), **{broken_flag: True})
        return False
    finally:
        end.close()


def _execute(job: dict[str, Any], program: HelperProcess, checker: HelperProcess | None) -> dict[str, Any]:
    """One run on a program helper (and a checker helper for function-style tests).

    A helper that fails is reported broken (`_program_broken` / `_checker_broken`) so the caller
    replaces it. Blame goes by cause: a program helper that fails, or a helper that never got the
    job, is the infrastructure's (a sandbox error); a checker that dies, stalls or garbles its answer
    once it holds the job has run nothing but trusted tests on the program's data, so that is the
    program's failure (`checker_failed`), as is a scratch the program left uncleanable."""
    program_job, checker_job = job["program"], job.get("checker")
    deadline = time.monotonic() + float(program_job["time_limit_s"]) + REPLY_GRACE_S
    result: dict[str, Any] = {}
    if checker_job is None or checker is None:
        try:
            result["program"] = program.run(program_job)
        except HelperError as exc:
            return {**sandbox_error(f"sandbox helper failed: {exc}"), "_program_broken": True}
        return _mark_uncleanable(result)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    checker_deadline = time.monotonic() + float(checker_job["time_limit_s"]) + CHECKER_GRACE_S
    program_sent = _hand_over(program, program_job, ours, deadline, result, "helper", "_program_broken")
    checker_sent = _hand_over(checker, checker_job, theirs, deadline, result, "checker", "_checker_broken")
    # Each side ends on its own: the program when the checker closes the call socket (or at its
    # time limit), the checker when the tests end (or the program's end of stream).
    if checker_sent:
        try:
            result["checker"] = checker.receive(min(deadline, checker_deadline))
        except HelperError as exc:
            stalled = "did not answer in time" in str(exc)
            result["checker"] = {"outcome": "checker_failed", "stalled": stalled, "detail": str(exc)[:300]}
            result["_checker_broken"] = True
            checker.close(now=True)  # closes its end of the call socket, so the program sees the end
    if program_sent:
        try:
            result["program"] = program.receive(deadline)
        except HelperError as exc:
            result.update(sandbox_error(f"sandbox helper failed: {exc}"), _program_broken=True)
    return _mark_uncleanable(result)


def _mark_uncleanable(result: dict[str, Any]) -> dict[str, Any]:
    """A helper that could not clear what its run left is not used again."""
    if result.get("program", {}).get("cleanup_error"):
        result["_program_broken"] = True
    return result
