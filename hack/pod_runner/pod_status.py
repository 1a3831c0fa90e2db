"""Pod status documents as the kubelet writes them: Running, restarting, and the terminal outcome.

They are sent as strategic merge patches of the status subresource, so conditions merge by type and
PodScheduled (written by the scheduler) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from .container import cri_timestamp
from .kube_api import JSON

RUNNER_NOTE = "the tarot pod runner runs only the first container"


@dataclass
class Outcome:
    """How the first container's last run ended."""

    exit_code: int
    started_at: str
    finished_at: str
    message: str = ""
    container_id: str = ""  # local://<pid> when a process ran

    @property
    def reason(self) -> str:
        return "Completed" if self.exit_code == 0 else "Error"

    def terminated(self) -> JSON:
        code = self.exit_code if self.exit_code >= 0 else 128 - self.exit_code  # killed by signal N -> 128+N
        state: JSON = {
            "exitCode": code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if code != self.exit_code:
            state["signal"] = -self.exit_code
        if self.message:
            state["message"] = self.message
        return state


def _conditions(ready: bool, now: str) -> list[JSON]:
    status = "True" if ready else "False"
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
        {"type": "Ready", "status": status, "lastTransitionTime": now},
    ]


def _ips(host_ip: str) -> JSON:
    return {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": host_ip, "podIPs": [{"ip": host_ip}]}


def _container_status(
    container: JSON, state: JSON, ready: bool, restarts: int, last: JSON | None, container_id: str = ""
) -> JSON:
    status: JSON = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": state,
    }
    if container_id:
        status["containerID"] = container_id
    if last:
        status["lastState"] = last
    return status


def _others(pod: JSON, terminal: bool, now: str) -> list[JSON]:
    """Containers after the first are not run; they are reported as such, never as if they ran."""
    waiting = {"waiting": {"reason": "NotRun", "message": RUNNER_NOTE}}
    state = _not_run_terminated(now) if terminal else waiting
    return [_container_status(c, state, False, 0, None) for c in pod["spec"]["containers"][1:]]


def _init_statuses(pod: JSON, now: str) -> list[JSON]:
    state = _not_run_terminated(now)
    return [_container_status(c, state, False, 0, None) for c in pod["spec"].get("initContainers") or []]


def _not_run_terminated(now: str) -> JSON:
    """The state of a container the runner did not run: terminated with exit 0 and reason NotRun."""
    return {
        "terminated": {
            "exitCode": 0,
            "reason": "NotRun",
            "message": RUNNER_NOTE,
            "startedAt": now,
            "finishedAt": now,
        }
    }


def running(
    pod: JSON, host_ip: str, start_time: str, started_at: str, pid: int, restarts: int, last: Outcome | None
) -> JSON:
    now = cri_timestamp()
    first = pod["spec"]["containers"][0]
    last_state = {"terminated": last.terminated()} if last else None
    status: JSON = {
        "phase": "Running",
        "startTime": start_time,
        **_ips(host_ip),
        "conditions": _conditions(True, now),
        "initContainerStatuses": _init_statuses(pod, now),
        "containerStatuses": [
            _container_status(
                first, {"running": {"startedAt": started_at}}, True, restarts, last_state, f"local://{pid}"
            ),
            *_others(pod, False, now),
        ],
    }
    return {"status": status}


def waiting(
    pod: JSON,
    host_ip: str,
    start_time: str,
    reason: str,
    message: str,
    restarts: int = 0,
    last: Outcome | None = None,
) -> JSON:
    """Container not (yet) running: CreateContainerConfigError, or CrashLoopBackOff between restarts."""
    now = cri_timestamp()
    first = pod["spec"]["containers"][0]
    last_state = {"terminated": last.terminated()} if last else None
    phase = "Running" if restarts else "Pending"
    return {
        "status": {
            "phase": phase,
            "startTime": start_time,
            **_ips(host_ip),
            "conditions": _conditions(False, now),
            "containerStatuses": [
                _container_status(
                    first, {"waiting": {"reason": reason, "message": message}}, False, restarts, last_state
                ),
                *_others(pod, False, now),
            ],
        }
    }


def terminal(
    pod: JSON,
    host_ip: str,
    start_time: str,
    outcome: Outcome,
    restarts: int,
    pod_reason: str = "",
    pod_message: str = "",
) -> JSON:
    now = cri_timestamp()
    first = pod["spec"]["containers"][0]
    status: JSON = {
        "phase": "Succeeded" if outcome.exit_code == 0 and not pod_reason else "Failed",
        "startTime": start_time,
        **_ips(host_ip),
        "conditions": _conditions(False, now),
        "containerStatuses": [
            _container_status(
                first, {"terminated": outcome.terminated()}, False, restarts, None, outcome.container_id
            ),
            *_others(pod, True, now),
        ],
    }
    if pod_reason:
        status["reason"] = pod_reason
        status["message"] = pod_message
    return {"status": status}
