"""Runs one pod's first container to its outcome, restarting it as restartPolicy says.

One thread per pod. It reports every transition to the pod status, honours activeDeadlineSeconds and
stops the process (SIGTERM, grace period, SIGKILL) when the pod is deleted or the runner shuts down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from . import pids, pod_status
from .container import LocalContainer, cri_timestamp
from .kube_api import JSON, ApiError, KubeApi
from .launch import ContainerConfigError, StartError, pod_dir, prepare

log = logging.getLogger(__name__)

CONFIG_RETRY_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0  # the kubelet backs off 10 s doubling to 5 min; tests cannot wait that long
TERMINATION_MESSAGE_LIMIT = 4096
LOGS_SERVED_TIMEOUT_SECONDS = 30.0
STATUS_RETRY_MAX_SECONDS = 5.0


class PodSupervisor(threading.Thread):
    def __init__(
        self,
        api: KubeApi,
        pod: JSON,
        node: JSON | None,
        state_dir: Path,
        host_ip: str,
        on_exit: Callable[[str], None],
    ) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.api = api
        self.pod = pod
        self.node = node
        self.state_dir = state_dir
        self.host_ip = host_ip
        self.uid: str = meta["uid"]
        self.path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        self.on_exit = on_exit
        self._stop_requested = threading.Event()
        self._grace = 30.0
        self._confirm_deletion = False
        self._logs_object_created = False

    # ---- called from the watch thread ----
    def request_stop(self, grace_seconds: float, confirm_deletion: bool) -> None:
        """Stop the process; with confirm_deletion, finish the pod's deletion as a kubelet does."""
        self._grace = grace_seconds
        self._confirm_deletion = confirm_deletion
        self._stop_requested.set()

    # ---- the pod's thread ----
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("supervising %s failed", self.path)
        finally:
            if self._confirm_deletion:
                self.api.delete(self.path, {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
            self.on_exit(self.uid)

    def _patch(self, body: JSON) -> None:
        """Write the pod status, retrying while the API server is unreachable or overloaded: a lost
        terminal status would leave the pod Running forever and its Job waiting on it."""
        delay = 0.2
        while not self._stop_requested.is_set():
            try:
                self.api.strategic_patch(self.path + "/status", body)
                return
            except ApiError as err:
                if err.status < 500 and err.status != 429:  # e.g. 404: the pod is gone
                    log.warning("status of %s not written: %s", self.path, err)
                    return
                problem = str(err)
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {err}"
            log.warning("status of %s not written (%s); retrying in %.1fs", self.path, problem, delay)
            self._stop_requested.wait(delay)
            delay = min(delay * 2, STATUS_RETRY_MAX_SECONDS)

    def _run(self) -> None:
        spec = self.pod["spec"]
        container = spec["containers"][0]
        start_time = (self.pod.get("status") or {}).get("startTime") or cri_timestamp()
        started_monotonic = time.monotonic()
        deadline = spec.get("activeDeadlineSeconds")
        restarts, last = 0, None
        directory = pod_dir(self.state_dir, self.pod)
        log_path = directory / "logs" / f"{container['name']}.log"
        outcome: pod_status.Outcome | None
        while not self._stop_requested.is_set():
            try:
                launch = prepare(self.api, self.pod, self.node, self.state_dir)
            except ContainerConfigError as err:
                self._patch(
                    pod_status.waiting(
                        self.pod,
                        self.host_ip,
                        start_time,
                        "CreateContainerConfigError",
                        str(err),
                        restarts,
                        last,
                    )
                )
                self._stop_requested.wait(CONFIG_RETRY_SECONDS)
                continue
            except StartError as err:
                outcome = pod_status.Outcome(128, cri_timestamp(), cri_timestamp(), str(err))
            else:
                if log_path.exists():  # the previous run's log becomes `kubectl logs --previous`
                    log_path.replace(log_path.with_suffix(".previous.log"))
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log_path.touch()  # kwok answers an error for a missing file, an empty log for an empty one
                self._ensure_logs_object(log_path)
                outcome = self._run_once(
                    launch.argv,
                    launch.env,
                    launch.cwd,
                    log_path,
                    launch.termination_log,
                    restarts,
                    last,
                    start_time,
                    deadline,
                    started_monotonic,
                )
            if outcome is None:  # stopped: deleted, deadline or shutdown
                return
            if self._finished(outcome, spec.get("restartPolicy") or "Always", start_time, restarts):
                return
            restarts, last = restarts + 1, outcome
            backoff = min(2.0 ** (restarts - 1), MAX_BACKOFF_SECONDS)
            self._patch(
                pod_status.waiting(
                    self.pod,
                    self.host_ip,
                    start_time,
                    "CrashLoopBackOff",
                    f"back-off {backoff:g}s restarting failed container",
                    restarts,
                    last,
                )
            )
            self._stop_requested.wait(backoff)

    def _finished(self, outcome: pod_status.Outcome, policy: str, start_time: str, restarts: int) -> bool:
        if policy == "Never" or (policy == "OnFailure" and outcome.exit_code == 0):
            self._patch(pod_status.terminal(self.pod, self.host_ip, start_time, outcome, restarts))
            log.info("%s finished: exit code %s", self.path, outcome.exit_code)
            return True
        return False

    def _run_once(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        termination_log: Path,
        restarts: int,
        last: pod_status.Outcome | None,
        start_time: str,
        deadline: int | None,
        started_monotonic: float,
    ) -> pod_status.Outcome | None:
        started_at = cri_timestamp()
        try:
            process = LocalContainer(argv, env, cwd, log_path)
        except OSError as err:
            return pod_status.Outcome(128, started_at, cri_timestamp(), f"exec: {err}")
        pid_file = pids.record(self.state_dir, self.uid, process.pid)
        log.info("%s started: pid %s: %s", self.path, process.pid, " ".join(argv))
        self._patch(
            pod_status.running(self.pod, self.host_ip, start_time, started_at, process.pid, restarts, last)
        )
        try:
            while True:
                code = process.wait(timeout=0.2)
                if code is not None:
                    break
                if self._stop_requested.is_set():
                    process.stop(self._grace)
                    return None
                if deadline is not None and time.monotonic() - started_monotonic > deadline:
                    code = process.stop(min(self._grace, 5.0))
                    outcome = pod_status.Outcome(
                        code, started_at, cri_timestamp(), "", f"local://{process.pid}"
                    )
                    self._patch(
                        pod_status.terminal(
                            self.pod,
                            self.host_ip,
                            start_time,
                            outcome,
                            restarts,
                            "DeadlineExceeded",
                            f"Pod was active on the node longer than the specified deadline ({deadline}s)",
                        )
                    )
                    return None
        finally:
            pid_file.unlink(missing_ok=True)
        message = _termination_message(termination_log)
        if (
            not message
            and code != 0
            and self.pod["spec"]["containers"][0].get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            message = process.output_tail()
        return pod_status.Outcome(code, started_at, cri_timestamp(), message, f"local://{process.pid}")

    def _ensure_logs_object(self, log_path: Path) -> None:
        """A kwok Logs object tells kwok's kubelet endpoint which file `kubectl logs` reads for this pod."""
        if self._logs_object_created:
            return
        meta = self.pod["metadata"]
        body: JSON = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
                ],
            },
            "spec": {
                "logs": [
                    {
                        "containers": [self.pod["spec"]["containers"][0]["name"]],
                        "logsFile": str(log_path),
                        "previousLogsFile": str(log_path.with_suffix(".previous.log")),
                        "follow": True,
                    }
                ]
            },
        }
        try:
            self.api.create(f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{meta['namespace']}/logs", body)
        except ApiError as err:
            if err.status != 409:
                log.warning("no Logs object for %s (kubectl logs will not work): %s", self.path, err)
                return
        self._logs_object_created = True
        self._wait_until_logs_are_served()

    def _wait_until_logs_are_served(self) -> None:
        """kwok finds a Logs object through its informer, a moment after it is created; until then it
        answers "no logs found". The pod is reported Running only once its log is served, so that
        `kubectl logs` works from the first moment a client can see the pod running (or finished)."""
        container = self.pod["spec"]["containers"][0]["name"]
        deadline = time.monotonic() + LOGS_SERVED_TIMEOUT_SECONDS
        while not self._stop_requested.is_set():
            try:
                self.api.get_text(self.path + "/log", params={"container": container})
                return
            except ApiError as err:
                if time.monotonic() > deadline:
                    log.warning("kwok does not serve the log of %s yet: %s", self.path, err)
                    return
            self._stop_requested.wait(0.05)


def _termination_message(path: Path) -> str:
    try:
        return path.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(errors="replace")
    except FileNotFoundError:
        return ""
