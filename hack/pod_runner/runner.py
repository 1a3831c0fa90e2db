"""Watches the pods bound to kwok nodes and hands each one to a PodSupervisor, exactly once per pod."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx

from . import SKIP_LABEL, SKIP_VALUE, pod_status
from .container import cri_timestamp
from .kube_api import JSON, ApiError, KubeApi
from .supervisor import PodSupervisor

log = logging.getLogger(__name__)

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SHUTDOWN_GRACE_SECONDS = 3.0


class PodRunner:
    def __init__(self, api: KubeApi, state_dir: Path) -> None:
        self.api = api
        self.state_dir = state_dir
        self.supervisors: dict[str, PodSupervisor] = {}
        self.seen: set[str] = set()  # every pod UID ever handed to a supervisor: each pod runs once
        self.nodes: dict[str, JSON | None] = {}
        self.lock = threading.Lock()

    def node(self, name: str) -> JSON | None:
        if self.nodes.get(name) is None:  # a node not found (yet) is asked again, never cached as absent
            self.nodes[name] = self.api.get_or_none(f"/api/v1/nodes/{name}")
        return self.nodes[name]

    def host_ip(self, node: JSON | None) -> str:
        for address in ((node or {}).get("status") or {}).get("addresses") or []:
            if address["type"] == "InternalIP":
                return str(address["address"])
        return "127.0.0.1"

    def watch_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                listing = self.api.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName!="})
                for pod in listing["items"]:
                    self.handle("ADDED", pod)
                version = listing["metadata"]["resourceVersion"]
                for event in self.api.watch(
                    "/api/v1/pods", version, params={"fieldSelector": "spec.nodeName!="}
                ):
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if event["type"] != "BOOKMARK":
                        self.handle(event["type"], event["object"])
            except (httpx.HTTPError, ApiError) as err:
                log.warning("pod watch interrupted (%s); listing again", err)
                stop.wait(1.0)

    def handle(self, event_type: str, pod: JSON) -> None:
        meta = pod["metadata"]
        if (meta.get("labels") or {}).get(SKIP_LABEL) == SKIP_VALUE:
            return  # left to kwok's stages
        node = self.node(pod["spec"]["nodeName"])
        if node is None or (node["metadata"].get("annotations") or {}).get(KWOK_NODE_ANNOTATION) != "fake":
            return  # only kwok nodes: the real node (hack/node) has its own kubelet
        uid = meta["uid"]
        with self.lock:
            supervisor = self.supervisors.get(uid)
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        grace = float(
            meta.get("deletionGracePeriodSeconds") or pod["spec"].get("terminationGracePeriodSeconds") or 0
        )
        if event_type == "DELETED":
            if supervisor:
                supervisor.request_stop(0, confirm_deletion=False)
            return
        if meta.get("deletionTimestamp"):
            if supervisor:
                supervisor.request_stop(grace, confirm_deletion=True)
            else:  # nothing runs for it here: confirm the deletion at once, as a kubelet would
                self.api.delete(path, {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
            return
        if supervisor:
            supervisor.pod = pod
            return
        if uid in self.seen:
            return
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            return
        self.seen.add(uid)
        if phase == "Running":  # started by an earlier runner whose process is gone
            self.fail_lost_pod(pod, node)
            return
        supervisor = PodSupervisor(self.api, pod, node, self.state_dir, self.host_ip(node), self.forget)
        with self.lock:
            self.supervisors[uid] = supervisor
        supervisor.start()

    def fail_lost_pod(self, pod: JSON, node: JSON | None) -> None:
        now = cri_timestamp()
        outcome = pod_status.Outcome(137, now, now, "the pod runner restarted and lost this process")
        start = (pod.get("status") or {}).get("startTime") or now
        path = f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}/status"
        self.api.strategic_patch(path, pod_status.terminal(pod, self.host_ip(node), start, outcome, 0))

    def forget(self, uid: str) -> None:
        with self.lock:
            self.supervisors.pop(uid, None)

    def shutdown(self) -> None:
        """Stops every process (the cluster is going away: no status is written)."""
        with self.lock:
            supervisors = list(self.supervisors.values())
        for supervisor in supervisors:
            supervisor.request_stop(SHUTDOWN_GRACE_SECONDS, confirm_deletion=False)
        for supervisor in supervisors:
            supervisor.join(timeout=SHUTDOWN_GRACE_SECONDS + 5)
