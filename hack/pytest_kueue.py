"""Kueue's controller manager as a host process against a test cluster (tests/integration/test_kueue_*).

`running_kueue(cluster, workdir)` builds Kueue once (hack/build-kueue.sh: sigs.k8s.io/kueue/cmd/kueue from
its Go module, version in hack/versions.env), applies the CRDs of the same module version, and runs the
manager out of cluster with the cluster's kubeconfig (controller-runtime's --kubeconfig), the `batch/job`
integration only, no leader election, and its health endpoint on a free loopback port. It stops it on exit.

No webhook is registered with the API server (no Service can reach a host process): the operator creates
its Jobs already suspended and labelled with the queue, which is all the defaulting webhook would add, and
Kueue's reconcilers do the admission. The manager still starts its webhook server (on loopback, with the
throwaway self-signed certificate of hack/build-kueue.sh) because it cannot run without one.

With internal certificate management off, Kueue v0.17 reads its metrics certificate from the fixed path
/etc/kueue/metrics/certs (its Deployment mounts a Secret there). Rather than write into this machine's
/etc, the manager runs in a private mount namespace (`unshare --mount`, root as the real node needs) whose
/etc is an overlay of the real /etc and a directory holding that certificate: nothing outside the
workdir changes, and the mount vanishes with the process. Metrics serving itself is off (bindAddress 0).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pytest_cluster import HACK_DIR, Cluster, free_port

KUEUE_API = "/apis/kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_NAMESPACE = "kueue-system"  # Kueue's own namespace: the default config excludes it from management
_PR_SET_PDEATHSIG = 1


@dataclass
class Kueue:
    """A running Kueue manager: its process, log and health port."""

    process: subprocess.Popen[bytes]
    log: Path
    health_port: int
    version: str

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def build_kueue() -> Path:
    """hack/build-kueue.sh (once, cached): the directory with bin/kueue and crd/*.yaml."""
    result = subprocess.run(
        ["bash", str(HACK_DIR / "build-kueue.sh")], capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        raise AssertionError(f"hack/build-kueue.sh failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _certificate(tools: Path, directory: Path) -> None:
    """The self-signed pair that hack/build-kueue.sh made, as tls.crt/tls.key in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        shutil.copyfile(tools / "certs" / name, directory / name)


def _die_with_parent() -> None:  # runs in the child between fork and exec; survives exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def install_crds(cluster: Cluster, tools: Path) -> None:
    """Kueue's CRDs from its module (server-side apply: the Workload CRD is too large for the
    last-applied annotation), then wait until they serve."""
    crds = str(tools / "crd")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
    cluster.kubectl("wait", "--for", "condition=Established", "--timeout", "60s", "-f", crds)


def _config(workdir: Path, health_port: int, webhook_port: int) -> Path:
    config = workdir / "config.yaml"
    config.write_text(
        f"""apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: {KUEUE_NAMESPACE}
health:
  healthProbeBindAddress: 127.0.0.1:{health_port}
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: {webhook_port}
  certDir: {workdir / "webhook-certs"}
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
integrations:
  frameworks: ["batch/job"]
"""
    )
    return config


@contextlib.contextmanager
def running_kueue(cluster: Cluster, workdir: Path, ready_timeout: float = 120.0) -> Iterator[Kueue]:
    """Kueue's manager against `cluster` until the block ends (SIGTERM, then SIGKILL)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise AssertionError("Kueue runs in a private mount namespace here: it needs root and unshare(1)")
    tools = build_kueue()
    install_crds(cluster, tools)
    if cluster.api.get_or_none(f"/api/v1/namespaces/{KUEUE_NAMESPACE}") is None:
        cluster.api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}},
        )
    workdir.mkdir(parents=True, exist_ok=True)
    _certificate(tools, workdir / "webhook-certs")
    etc_upper, etc_work = workdir / "etc-upper", workdir / "etc-work"
    _certificate(tools, etc_upper / "kueue" / "metrics" / "certs")
    etc_work.mkdir(exist_ok=True)
    health_port = free_port()
    config = _config(workdir, health_port, free_port())
    overlay = f"lowerdir=/etc,upperdir={etc_upper},workdir={etc_work}"
    mount_etc = f'mount -t overlay overlay -o {overlay} /etc && exec "$@"'
    command = [
        "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount_etc, "sh",
        str(tools / "bin" / "kueue"), "--config", str(config), "--kubeconfig", str(cluster.kubeconfig),
        # The on-demand visibility API server would bind a fixed port and needs an APIService: not used.
        "--feature-gates", "VisibilityOnDemand=false",
    ]  # fmt: skip
    log = workdir / "kueue.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
    kueue = Kueue(process=process, log=log, health_port=health_port, version=tools.name)
    try:
        deadline = time.monotonic() + ready_timeout
        while not kueue.ready():
            if not kueue.alive():
                raise AssertionError(f"kueue exited with {process.returncode}:\n{kueue.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"kueue was not ready after {ready_timeout:.0f} s:\n{kueue.log_tail()}")
            time.sleep(0.2)
        yield kueue
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
