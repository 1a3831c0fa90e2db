"""pytest fixtures for tests that need the local control plane (marker: cluster).

`cluster` (session): reuses a healthy cluster that a developer started with `hack/cluster up` (the
default name, or TAROT_CLUSTER_NAME), or starts a private one for this session and always stops it
(normal end, failure, Ctrl-C, SIGTERM); private clusters left by a killed session are removed first.
`namespace` (per test): a fresh namespace, deleted afterwards.
`real_node_images` (session): tarot's images built and imported into the real node.
`operator_pod` (module): the operator installed by Helm as a pod on the real node, then uninstalled.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HACK_DIR = Path(__file__).resolve().parent
if str(HACK_DIR) not in sys.path:
    sys.path.insert(0, str(HACK_DIR))

from local_processes import free_port as free_port  # noqa: E402  (re-exported: tests import it from here)
from pod_runner.kube_api import JSON, ApiError, KubeApi  # noqa: E402

CLUSTER_SCRIPT = HACK_DIR / "cluster"
CLUSTER_VALUES = HACK_DIR / "cluster-values.yaml"  # the chart's values for the real node
OPERATOR_RELEASE, OPERATOR_NAMESPACE = "tarot", "tarot-system"
CACHE = Path(os.environ.get("TAROT_CACHE", Path.home() / ".cache" / "tarot"))
PRIVATE_PREFIX = "pytest-"


@dataclass
class Cluster:
    """A running cluster: its kubeconfig, our kubectl, and a JSON API client."""

    name: str
    kubeconfig: Path
    kubectl_path: Path
    api: KubeApi

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def ctr(self, *args: str, check: bool = True) -> str:
        """`ctr` against the real node's containerd, in the kubelet's namespace (k8s.io); its stdout."""
        socket = CACHE / "clusters" / self.name / "node" / "containerd.sock"
        result = subprocess.run(
            ["ctr", "--address", str(socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )
        return result.stdout

    def wait_for(
        self, what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2
    ) -> Any:
        """Polls probe() until it returns something truthy; fails naming `what` after timeout."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def _run_cluster(name: str, command: str) -> str:
    result = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "--name", name, command], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"hack/cluster --name {name} {command} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result.stdout


def _kubeconfig_from(stdout: str) -> Path:
    lines = [line for line in stdout.splitlines() if line.startswith("KUBECONFIG=")]
    if not lines:
        raise RuntimeError(f"hack/cluster up printed no KUBECONFIG= line:\n{stdout}")
    return Path(lines[-1].split("=", 1)[1])


def _remove_orphaned_private_clusters() -> None:
    """Private clusters whose pytest process is gone (killed with SIGKILL) are stopped and removed."""
    for state in (CACHE / "clusters").glob(PRIVATE_PREFIX + "*"):
        match = re.fullmatch(PRIVATE_PREFIX + r"(\d+)", state.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            _run_cluster(state.name, "down")


def _bin_dir() -> Path:
    versions = dict(
        line.split("=", 1)
        for line in (HACK_DIR / "versions.env").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    return CACHE / "k8s" / versions["KUBE_VERSION"] / "bin"


def _healthy(kubeconfig: Path) -> bool:
    kubectl = _bin_dir() / "kubectl"
    if not (kubeconfig.exists() and kubectl.exists()):
        return False
    probe = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    shared_name = os.environ.get("TAROT_CLUSTER_NAME", "tarot")
    shared_kubeconfig = CACHE / "clusters" / shared_name / "kubeconfig"
    if shutil.which("go") is None and not (_bin_dir() / "kube-apiserver").exists():
        pytest.fail("the cluster tests need Go >= 1.26 to build the control plane (run `make cluster-tools`)")
    owned: str | None = None
    if _healthy(shared_kubeconfig):
        name, kubeconfig = shared_name, shared_kubeconfig  # a developer's `hack/cluster up`: leave it running
    else:
        _remove_orphaned_private_clusters()
        name = owned = f"{PRIVATE_PREFIX}{os.getpid()}"
    stop = _stopper(owned)
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if owned:
            kubeconfig = _kubeconfig_from(_run_cluster(owned, "up"))
        api = KubeApi(str(kubeconfig))
        yield Cluster(name=name, kubeconfig=kubeconfig, kubectl_path=_bin_dir() / "kubectl", api=api)
        api.close()
    finally:
        stop()
        signal.signal(signal.SIGTERM, previous_sigterm)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # pytest then runs the teardown that stops the cluster


def _stopper(owned: str | None) -> Callable[[], None]:
    """Stops an owned cluster once, from the fixture's teardown or, failing that, at interpreter exit."""
    done = False

    def stop() -> None:
        nonlocal done
        if owned and not done:
            done = True
            _run_cluster(owned, "down")
            atexit.unregister(stop)

    if owned:
        atexit.register(stop)
    return stop


@pytest.fixture(scope="session")
def real_node_images(cluster: Cluster) -> list[str]:
    """tarot's images (operator, sandbox, CPU trainer) built (`make images`: hack/images.sh all) and
    imported into the real node's containerd (`hack/cluster load`); one line per image with its size."""
    build = ["bash", str(HACK_DIR / "images.sh"), "all"]
    load = ["bash", str(CLUSTER_SCRIPT), "--name", cluster.name, "load"]
    for command in (build, load):
        result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr[-6000:]}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 3, result.stdout
    return lines


@pytest.fixture(scope="module")
def operator_pod(cluster: Cluster, real_node_images: list[str]) -> Iterator[JSON]:
    """`helm install` with hack/cluster-values.yaml; uninstalled after the module, leaving no pod behind.
    Per module, not per session: a cluster-wide operator left running would also drive the runs of
    the modules that start their own operator process."""
    helm = str(cluster.kubectl_path.parent / "helm")
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig), "-n", OPERATOR_NAMESPACE]
    install = [
        *(helm, *kubeconfig, "install", OPERATOR_RELEASE, str(HACK_DIR.parent / "charts" / "tarot")),
        *("--create-namespace", "-f", str(CLUSTER_VALUES), "--wait", "--timeout", "5m"),
    ]
    try:
        # Inside the try: a release whose install failed (its --wait timed out) is uninstalled too, or
        # its operator would drive the runs of later modules and the next install would find the name taken.
        result = subprocess.run(install, capture_output=True, text=True, timeout=400)
        if result.returncode != 0:
            raise AssertionError(
                f"helm install failed:\n{result.stdout[-3000:]}{result.stderr[-6000:]}\n"
                f"operator pods' status: {json.dumps([p['status'] for p in _operator_pods(cluster)])[-3000:]}"
            )
        yield cluster.wait_for("the operator pod to be ready", lambda: _ready_operator(cluster), timeout=120)
    finally:
        uninstall = [helm, *kubeconfig, "uninstall", OPERATOR_RELEASE, "--wait"]
        subprocess.run(uninstall, capture_output=True, timeout=300)


def _operator_pods(cluster: Cluster) -> list[JSON]:
    return list(
        cluster.api.get(
            f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods",
            params={"labelSelector": f"app.kubernetes.io/instance={OPERATOR_RELEASE}"},
        )["items"]
    )


def _ready_operator(cluster: Cluster) -> JSON | None:
    pods = _operator_pods(cluster)
    ready = [p for p in pods if any(c.get("ready") for c in p["status"].get("containerStatuses") or [])]
    return ready[0] if len(ready) == 1 else None


def container_id(pod: JSON) -> str:
    """The containerd id of a one-container pod on the real node (fails for a pod runner's process)."""
    [status] = pod["status"]["containerStatuses"]
    assert status["containerID"].startswith("containerd://"), status
    return str(status["containerID"]).removeprefix("containerd://")


def terminated_state(pod: JSON) -> JSON | None:
    """The `terminated` state of a one-container pod's container (exit code, message), once it ended."""
    statuses = pod["status"].get("containerStatuses") or []
    return statuses[0]["state"].get("terminated") if statuses else None


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    cluster.api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )

    def default_account() -> JSON | None:
        return cluster.api.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default")

    cluster.wait_for(f"the default ServiceAccount of {name}", default_account, timeout=30)
    yield name
    with contextlib.suppress(ApiError):
        cluster.api.delete(f"/api/v1/namespaces/{name}")
