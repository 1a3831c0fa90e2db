"""Benchmark: the operator with many TarotRuns at once on the local control plane.

For each size (default 50, then 500) on a private `hack/cluster`: a fresh operator process, N
TarotRuns created at once (16 concurrent clients), and then

  - create_to_first_job: from the moment the API server accepted a run to the moment a watch on
    Jobs sees that run's first Job (the data Job), p50 / p95 / max;
  - operator_rss_mb: the operator process's resident memory once every run has its first Job
    and after the steady-state window (VmRSS; VmHWM is the peak);
  - API requests per run per minute at steady state: over a quiet window (--window seconds) after
    every run has its first Job, the requests of the operator's own client (its
    tarot_operator_api_requests_total), and every client's requests to the API server
    (apiserver_request_total: controllers, kwok, the pod runner too) above the rate measured
    before the runs were created (over a window as long).

Pods are left to kwok (the operator adds the pod runner's skip label, tarot.dev/pod-runner=skip, to
every pod): the sandbox pods become Running at once and nothing executes. The runs name a Kueue
queue, so their Jobs are created suspended and stay queued (no Kueue here): the steady state is N
live runs waiting, not N finished ones. Extra kwok nodes give the sandbox pods room.

    python3 bench/operator_scale.py [--sizes 50 500] [--window 60] [--cluster-name tarot-bench]

Prints a table, then one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from tarot_operator.process import OperatorProcess, apply_crd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
from pod_runner.kube_api import ApiError, KubeApi  # noqa: E402

CLUSTER = REPO / "hack" / "cluster"
CRD = REPO / "crds" / "tarot.dev_tarotruns.yaml"
VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "hack" / "versions.env").read_text().splitlines()
    if re.match(r"^[A-Z_]+=", line)
)
BIN = (
    Path(os.environ.get("TAROT_CACHE", Path.home() / ".cache" / "tarot"))
    / "k8s"
    / VERSIONS["KUBE_VERSION"]
    / "bin"
)
EXTRA_NODES = 4  # x 250 pods: room for 500 sandbox pods next to hack/cluster's 3 nodes
SPEC: dict[str, Any] = {
    "model": {"name": "tiny"},
    "training": {"maxSteps": 4, "numGenerations": 4, "perDeviceTrainBatchSize": 4},
    "sandbox": {"workers": 1, "memoryLimitMb": 64},
    "resources": {"cpu": "100m", "memory": "256Mi", "kueueQueue": "bench"},
    "storage": {"size": "1Gi"},
}
console = Console()


def cluster(name: str, command: str) -> str:
    result = subprocess.run(["bash", str(CLUSTER), "--name", name, command], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"hack/cluster {command} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def add_service_range(api: KubeApi) -> None:
    """Every run has a ClusterIP Service (its sandbox); kwok's default range (a /24) holds ~250.
    A ServiceCIDR (networking.k8s.io/v1, GA since Kubernetes 1.33) extends it at run time."""
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": "bench"},
        "spec": {"cidrs": ["10.96.0.0/16"]},
    }
    try:
        api.create("/apis/networking.k8s.io/v1/servicecidrs", body)
    except ApiError as err:
        if err.status != 409:
            raise


def add_nodes(api: KubeApi) -> None:
    for i in range(EXTRA_NODES):
        name = f"bench-node-{i}"
        capacity = {"cpu": "1000", "memory": "4Ti", "pods": "250"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            },
            "status": {"allocatable": capacity, "capacity": capacity},
        }
        try:
            api.create("/api/v1/nodes", node)
        except ApiError as err:
            if err.status != 409:
                raise


class FirstJobs:
    """Watches Jobs in a namespace and records when each run's first Job appeared."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        listing = api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")
        self.thread = threading.Thread(
            target=self._watch, args=(listing["metadata"]["resourceVersion"],), daemon=True
        )
        self.thread.start()

    def _watch(self, version: str) -> None:
        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        while not self.stop.is_set():
            try:
                for event in self.api.watch(path, version, timeout_seconds=60):
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] == "ADDED":
                        run = (obj["metadata"].get("labels") or {}).get("tarot.dev/run")
                        with self.lock:
                            if run and run not in self.seen:
                                self.seen[run] = time.monotonic()
                    if self.stop.is_set():
                        return
            except httpx.HTTPError:
                if self.stop.is_set():
                    return  # the cluster is going away
                time.sleep(0.5)  # a dropped watch: resume from the last version seen

    def count(self) -> int:
        with self.lock:
            return len(self.seen)


def apiserver_requests(api: KubeApi) -> float:
    text = api._client.get("/metrics").text  # the API server's own Prometheus endpoint
    return sum(
        float(m.group(1)) for m in re.finditer(r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.M)
    )


def operator_requests(operator: OperatorProcess) -> float:
    pattern = r"^tarot_operator_api_requests_total\{[^}]*\} (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, operator.metrics(), re.M))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (/proc/<pid>/stat, clock ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def control_plane_pids(cluster_name: str) -> list[int]:
    """kube-apiserver and etcd of this cluster (their command lines name the cluster's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = argv[0].decode(errors="replace")
        marker = f"/clusters/{cluster_name}/".encode()
        if command.endswith(("kube-apiserver", "/etcd")) and any(marker in arg for arg in argv):
            found.append(int(entry.name))
    return found


def peak_rss_mb(operator: OperatorProcess) -> float:
    assert operator.process is not None
    for line in Path(f"/proc/{operator.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def scenario(
    api: KubeApi,
    kubeconfig: Path,
    size: int,
    window: float,
    workdir: Path,
    job_sandbox: str,
    cluster_name: str,
    cleanup: bool,
) -> dict[str, float]:
    namespace = f"bench-{size}"
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    operator = OperatorProcess(
        kubeconfig, workdir / f"operator-{size}.log",  # cluster-wide (the bench's cluster is its own)
        "--pod-label", "tarot.dev/pod-runner=skip", "--job-sandbox", job_sandbox,
    )  # fmt: skip
    operator.start()
    try:
        # The API server's load without these runs (controllers, kwok heartbeats, leases, the pod runner).
        time.sleep(10.0)  # past the start-up listing of the operator's watches
        base0, b0 = apiserver_requests(api), time.monotonic()
        time.sleep(window)
        baseline_per_min = (apiserver_requests(api) - base0) / ((time.monotonic() - b0) / 60)
        watcher = FirstJobs(api, namespace)
        assert operator.process is not None
        servers = control_plane_pids(cluster_name)
        cpu_operator0, cpu_servers0 = cpu_seconds([operator.process.pid]), cpu_seconds(servers)
        runs = f"/apis/tarot.dev/v1alpha1/namespaces/{namespace}/tarotruns"
        created: dict[str, float] = {}

        def create(i: int) -> None:
            name = f"run-{i:04d}"
            body = {
                "apiVersion": "tarot.dev/v1alpha1",
                "kind": "TarotRun",
                "metadata": {"name": name},
                "spec": SPEC,
            }
            api.create(runs, body)
            created[name] = time.monotonic()

        console.print(f"[{size}] creating {size} runs ...")
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, range(size)))
        create_s = time.monotonic() - started
        deadline = time.monotonic() + max(300.0, size * 1.0)
        while watcher.count() < size and time.monotonic() < deadline:
            time.sleep(0.2)
        all_jobs_s = time.monotonic() - started
        if watcher.count() < size:
            raise SystemExit(
                f"[{size}] only {watcher.count()} of {size} runs got a Job:\n{operator.log_tail()}"
            )
        latencies = [watcher.seen[name] - at for name, at in created.items()]
        cpu_operator = cpu_seconds([operator.process.pid]) - cpu_operator0
        cpu_servers = cpu_seconds(servers) - cpu_servers0
        rss_first = operator.rss_mb()
        console.print(
            f"[{size}] every run has its first Job after {all_jobs_s:.1f} s; steady state for {window:.0f} s"
        )
        time.sleep(5.0)  # let the last status patches and events of the burst land
        ops0, api0, t0 = operator_requests(operator), apiserver_requests(api), time.monotonic()
        time.sleep(window)
        ops1, api1, t1 = operator_requests(operator), apiserver_requests(api), time.monotonic()
        minutes = (t1 - t0) / 60
        watcher.stop.set()
        return {
            "runs": size,
            "create_s": create_s,
            "all_first_jobs_s": all_jobs_s,
            "create_to_first_job_p50_s": statistics.median(latencies),
            "create_to_first_job_p95_s": percentile(latencies, 0.95),
            "create_to_first_job_max_s": max(latencies),
            "operator_rss_mb": operator.rss_mb(),
            "operator_rss_first_jobs_mb": rss_first,
            "operator_peak_rss_mb": peak_rss_mb(operator),
            "operator_requests_per_run_per_min": (ops1 - ops0) / size / minutes,
            "apiserver_requests_per_run_per_min": ((api1 - api0) / minutes - baseline_per_min) / size,
            "apiserver_baseline_per_min": baseline_per_min,
            "operator_requests_burst_per_run": ops0 / size,
            "operator_cpu_s_to_first_jobs": cpu_operator,
            "apiserver_etcd_cpu_s_to_first_jobs": cpu_servers,
        }
    finally:
        if cleanup:
            # Deleted while the operator runs (it releases the runs' finalizers), and gone before the
            # next size's baseline, which must not include this deletion and garbage collection.
            api.delete(f"/api/v1/namespaces/{namespace}")
            deadline = time.monotonic() + 600
            while (
                api.get_or_none(f"/api/v1/namespaces/{namespace}") is not None and time.monotonic() < deadline
            ):
                time.sleep(1.0)
        operator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--window", type=float, default=60.0, help="Seconds of steady state measured.")
    parser.add_argument("--cluster-name", default="tarot-bench")
    parser.add_argument("--keep", action="store_true", help="Leave the cluster running afterwards.")
    parser.add_argument(
        "--job-sandbox",
        default="service",
        choices=["service", "in-process"],
        help="service: a sandbox pod per run gates its data Job; in-process: 0-replica sandboxes.",
    )
    args = parser.parse_args()

    console.print(f"starting cluster {args.cluster_name} ...")
    kubeconfig = Path(cluster(args.cluster_name, "up").strip().splitlines()[-1].split("=", 1)[1])
    api = KubeApi(str(kubeconfig))
    results: list[dict[str, float]] = []
    try:
        add_nodes(api)
        add_service_range(api)
        apply_crd(BIN / "kubectl", kubeconfig, CRD)
        with tempfile.TemporaryDirectory(prefix="operator-scale-") as workdir:
            for i, size in enumerate(args.sizes):
                last = i == len(args.sizes) - 1  # the cluster goes down after it: no cleanup needed
                where = Path(workdir)
                results.append(
                    scenario(
                        api,
                        kubeconfig,
                        size,
                        args.window,
                        where,
                        args.job_sandbox,
                        args.cluster_name,
                        not last,
                    )
                )
    finally:
        api.close()
        if not args.keep:
            cluster(args.cluster_name, "down")

    table = Table(title=f"operator scale ({os.cpu_count()} CPUs, {platform.machine()})")
    for column in [
        "runs",
        "first Job p50",
        "p95",
        "max",
        "RSS MB",
        "peak RSS",
        "op req/run/min",
        "all req/run/min",
    ]:
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            str(int(r["runs"])),
            f"{r['create_to_first_job_p50_s']:.2f} s",
            f"{r['create_to_first_job_p95_s']:.2f} s",
            f"{r['create_to_first_job_max_s']:.2f} s",
            f"{r['operator_rss_mb']:.0f}",
            f"{r['operator_peak_rss_mb']:.0f}",
            f"{r['operator_requests_per_run_per_min']:.3f}",
            f"{r['apiserver_requests_per_run_per_min']:.2f}",
        )
    console.print(table)
    largest = max(results, key=lambda r: r["runs"])
    figures: dict[str, Any] = {
        "runs": int(largest["runs"]),
        "create_to_first_job_p50_s": round(largest["create_to_first_job_p50_s"], 3),
        "create_to_first_job_p95_s": round(largest["create_to_first_job_p95_s"], 3),
        "operator_rss_mb": round(largest["operator_rss_mb"], 1),
        "operator_requests_per_run_per_min": round(largest["operator_requests_per_run_per_min"], 4),
        "apiserver_requests_per_run_per_min": round(largest["apiserver_requests_per_run_per_min"], 3),
        "sizes": [{k: round(v, 4) for k, v in r.items()} for r in results],
        "cpus": os.cpu_count(),
        "job_sandbox": args.job_sandbox,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
