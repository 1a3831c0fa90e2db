"""Benchmark: the operator with many TarotRuns on the local control plane, against a floor.

On a private `hack/cluster` whose control plane has the flags a platform team would set for this load
(TUNED_FLAGS, passed through TAROT_CLUSTER_COMPONENT_ARGS; `--untuned` keeps the defaults):

  1. floor: for --burst N runs, a plain async client (no operator) creates each run and the same
     children the operator makes (its own builders: PVC, ConfigMap, NetworkPolicy, Service, sandbox
     Deployment), waits for the Deployment to be Available (the planner's gate of the data Job) and
     creates the data Job: create -> Job p50/p95 is what the control plane itself allows. Then the
     floor's namespace is deleted and waited for.
  2. burst: a fresh cluster-wide operator, N runs created at once (16 client threads), create ->
     first Job p50/p95; burst_vs_floor = operator p95 / floor p95. The operator's CPU and its own
     client's requests until the last first Job, per run.
  3. steady arrival: on top of those N live runs, runs arrive at --rate per second for --steady
     seconds; their create -> first Job p50/p95.
  4. fill to --live runs, then the operator's RSS and its requests per run per minute over a quiet
     --window.
  5. restart: the operator stopped and a new one started with every run live: seconds until it is
     ready and until every run's daemon has reconciled once (its tarot_run_phase series are back),
     and the writes it made meanwhile (there should be none: nothing changed).

Pods are left to kwok (the operator adds the pod runner's skip label, tarot.dev/pod-runner=skip, to
every pod): the sandbox pods become Running at once and nothing executes. The runs name a Kueue
queue, so their Jobs are created suspended and stay queued (no Kueue here): the steady state is N
live runs waiting, not N finished ones. Extra kwok nodes give the sandbox pods room.

    python3 bench/operator_scale.py [--burst 500] [--rate 2] [--steady 120] [--live 1000]
                                    [--window 30] [--cluster-name tarot-bench] [--untuned]

Prints a table, then one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from tarot_operator.config import PodScheduling
from tarot_operator.jobs import JobSettings, stage_job
from tarot_operator.kube import Kube
from tarot_operator.names import child_name
from tarot_operator.reconcile import object_path
from tarot_operator.run_spec import spec_yaml
from tarot_operator.sandbox import sandbox_deployment, sandbox_network_policy, sandbox_service, sandbox_url
from tarot_operator.workspace import run_config, workspace_claim

from tarot_jobs.lifecycle.types import ChildKind, ChildRef
from tarot_jobs.spec.model import TarotRunSpec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
from local_processes import OperatorProcess, apply_crd  # noqa: E402
from percentiles import percentile  # noqa: E402
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
# What a platform team sets for a control plane that takes hundreds of Deployments at once
# (docs/operator.md, "Scale"): the controller manager's client is limited to 20 requests/s (burst 30)
# by default, and each run's sandbox costs it ~6 requests (ReplicaSet, Pod, statuses).
TUNED_FLAGS = (
    "kube-apiserver:max-requests-inflight=800",
    "kube-apiserver:max-mutating-requests-inflight=400",
    "kube-controller-manager:kube-api-qps=200",
    "kube-controller-manager:kube-api-burst=400",
    "kube-controller-manager:concurrent-deployment-syncs=25",
    "kube-controller-manager:concurrent-replicaset-syncs=25",
    "kube-controller-manager:concurrent-job-syncs=25",
    "kube-scheduler:kube-api-qps=200",
    "kube-scheduler:kube-api-burst=400",
)
EXTRA_NODES = 6  # x 250 pods: room for 1000+ sandbox pods next to hack/cluster's 3 nodes
SPEC: dict[str, Any] = {
    "model": {"name": "tiny"},
    "training": {"maxSteps": 4, "numGenerations": 4, "perDeviceTrainBatchSize": 4},
    "sandbox": {"workers": 1, "memoryLimitMb": 64},
    "resources": {"cpu": "100m", "memory": "256Mi", "kueueQueue": "bench"},
    "storage": {"size": "1Gi"},
}
POD_LABELS = {"tarot.dev/pod-runner": "skip"}
console = Console()


def cluster(name: str, command: str, flags: tuple[str, ...] = ()) -> str:
    env = {**os.environ, "TAROT_CLUSTER_COMPONENT_ARGS": " ".join(flags)}
    env.setdefault("TAROT_REAL_NODE", "0")  # pods here are kwok's; no real node needed
    result = subprocess.run(
        ["bash", str(CLUSTER), "--name", name, command], capture_output=True, text=True, env=env
    )
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
            except (httpx.HTTPError, ApiError):
                if self.stop.is_set():
                    return  # the cluster is going away
                time.sleep(0.5)  # a dropped watch: resume from the last version seen

    def count(self, names: set[str] | None = None) -> int:
        with self.lock:
            return len(self.seen) if names is None else len(names & self.seen.keys())

    def wait(self, names: set[str], timeout: float, what: str, log: Callable[[], str] = lambda: "") -> float:
        started = time.monotonic()
        deadline = started + timeout
        while self.count(names) < len(names) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.count(names) < len(names):
            raise SystemExit(f"{what}: only {self.count(names)} of {len(names)} runs got a Job\n{log()}")
        return time.monotonic() - started

    def latencies(self, created: dict[str, float]) -> list[float]:
        with self.lock:
            return [self.seen[name] - at for name, at in created.items()]


def metric_sum(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    total = 0.0
    for match in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in (labels or {}).items()):
            total += float(match.group(2))
    return total


def apiserver_metrics(api: KubeApi) -> str:
    return api._client.get("/metrics").text  # the API server's own Prometheus endpoint


def operator_requests(operator: OperatorProcess, verbs: tuple[str, ...] = ()) -> float:
    text = operator.metrics()
    if not verbs:
        return metric_sum(text, "tarot_operator_api_requests_total")
    return sum(metric_sum(text, "tarot_operator_api_requests_total", {"verb": v}) for v in verbs)


def runs_reconciled(operator: OperatorProcess) -> int:
    """Runs this operator process has reconciled at least once (each has its tarot_run_phase series)."""
    return len(re.findall(r'^tarot_run_phase\{[^}]*phase="Pending"[^}]*\}', operator.metrics(), re.M))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (/proc/<pid>/stat, clock ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def control_plane_pids(cluster_name: str) -> list[int]:
    """kube-apiserver, etcd and kube-controller-manager of this cluster (their command lines name its
    directory)."""
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
        if command.endswith(("kube-apiserver", "/etcd", "kube-controller-manager")) and any(
            marker in arg for arg in argv
        ):
            found.append(int(entry.name))
    return found


def peak_rss_mb(operator: OperatorProcess) -> float:
    assert operator.process is not None
    for line in Path(f"/proc/{operator.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_body(name: str) -> dict[str, Any]:
    return {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": name}, "spec": SPEC}


def runs_path(namespace: str) -> str:
    return f"/apis/tarot.dev/v1alpha1/namespaces/{namespace}/tarotruns"


def create_runs(api: KubeApi, namespace: str, names: list[str], threads: int = 16) -> dict[str, float]:
    created: dict[str, float] = {}

    def create(name: str) -> None:
        api.create(runs_path(namespace), run_body(name))
        created[name] = time.monotonic()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))
    return created


def create_at_rate(api: KubeApi, namespace: str, names: list[str], rate: float) -> dict[str, float]:
    """One run every 1/rate seconds on a fixed schedule (a late create does not shift the next)."""
    created: dict[str, float] = {}
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        futures = []
        for i, name in enumerate(names):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))

            def create(name: str = name) -> None:
                api.create(runs_path(namespace), run_body(name))
                created[name] = time.monotonic()

            futures.append(pool.submit(create))
        for future in futures:
            future.result()
    return created


def delete_namespace(api: KubeApi, namespace: str, timeout: float = 600) -> float:
    started = time.monotonic()
    api.delete(f"/api/v1/namespaces/{namespace}")
    deadline = started + timeout
    while api.get_or_none(f"/api/v1/namespaces/{namespace}") is not None and time.monotonic() < deadline:
        time.sleep(1.0)
    return time.monotonic() - started


# ---- the floor: the same objects, no operator -------------------------------------------------------


async def _watch_available(kube: Kube, namespace: str, available: dict[str, asyncio.Event]) -> None:
    """Sets available[run] once the run's sandbox Deployment has condition Available=True."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    version = (await kube.get(path))["metadata"]["resourceVersion"]
    while True:
        params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "120"}
        timeout = httpx.Timeout(30.0, read=150.0)
        async with kube.client.stream("GET", path, params=params, timeout=timeout) as response:
            async for line in response.aiter_lines():
                if not line:
                    continue
                obj = json.loads(line)["object"]
                version = obj["metadata"].get("resourceVersion", version)
                run = (obj["metadata"].get("labels") or {}).get("tarot.dev/run")
                conditions = (obj.get("status") or {}).get("conditions") or []
                if run in available and any(
                    c.get("type") == "Available" and c.get("status") == "True" for c in conditions
                ):
                    available[run].set()


async def _floor(kubeconfig: Path, namespace: str, names: list[str]) -> dict[str, float]:
    kube = Kube.connect(str(kubeconfig), user_agent="tarot-bench-floor")
    spec = TarotRunSpec.model_validate(SPEC)
    created: dict[str, float] = {}
    available = {name: asyncio.Event() for name in names}
    watcher = asyncio.create_task(_watch_available(kube, namespace, available))
    await asyncio.sleep(0.5)  # the watch is open

    async def one(name: str) -> None:
        run = await kube.create(runs_path(namespace), run_body(name))
        created[name] = time.monotonic()

        async def post(obj: dict[str, Any]) -> None:
            await kube.create(object_path(obj["kind"], namespace), obj)

        sandbox = child_name(name, ChildRef(ChildKind.SANDBOX))
        await asyncio.gather(
            post(workspace_claim(run, child_name(name, ChildRef(ChildKind.WORKSPACE)), spec)),
            post(run_config(run, spec_yaml(spec, sandbox_url(sandbox, namespace)), None)),
            post(sandbox_network_policy(run, sandbox)),
            post(sandbox_service(run, sandbox)),
        )
        await post(sandbox_deployment(run, sandbox, spec, "sandbox:bench", 1, POD_LABELS, PodScheduling()))
        await available[name].wait()
        settings = JobSettings(image="trainer:bench", model_cache="/workspace/models", suspend=True,
                               pod_labels=POD_LABELS)  # fmt: skip
        await post(stage_job(run, ChildRef(ChildKind.DATA), spec, settings))

    try:
        await asyncio.wait_for(asyncio.gather(*(one(name) for name in names)), timeout=600)
    finally:
        watcher.cancel()
        await kube.close()
    return created


def floor(api: KubeApi, kubeconfig: Path, size: int, cluster_name: str) -> dict[str, Any]:
    namespace = "floor"
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    watcher = FirstJobs(api, namespace)
    names = [f"floor-{i:04d}" for i in range(size)]
    console.print(f"[floor] {size} runs and their children, plain async client ...")
    servers = control_plane_pids(cluster_name)
    cpu_servers0, cpu_client0 = cpu_seconds(servers), time.process_time()
    started = time.monotonic()
    created = asyncio.run(_floor(kubeconfig, namespace, names))
    watcher.wait(set(names), 120, "floor")
    all_s = time.monotonic() - started
    cpu_servers, cpu_client = cpu_seconds(servers) - cpu_servers0, time.process_time() - cpu_client0
    latencies = watcher.latencies(created)
    watcher.stop.set()
    gone_s = delete_namespace(api, namespace)
    console.print(f"[floor] every Job after {all_s:.1f} s; namespace deleted in {gone_s:.1f} s")
    return {
        "floor_p50_s": statistics.median(latencies),
        "floor_p95_s": percentile(latencies, 0.95),
        "floor_max_s": max(latencies),
        "floor_all_jobs_s": all_s,
        "floor_client_cpu_ms_per_run": 1000 * cpu_client / size,
        "floor_control_plane_cpu_ms_per_run": 1000 * cpu_servers / size,
    }


# ---- the operator ---------------------------------------------------------------------------------


def scenario(api: KubeApi, kubeconfig: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    namespace = "bench"
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    operator_args = ("--pod-label", "tarot.dev/pod-runner=skip", "--job-sandbox", "service")
    operator = OperatorProcess(kubeconfig, workdir / "operator.log", *operator_args)  # cluster-wide
    operator.start()
    out: dict[str, Any] = {}
    try:
        time.sleep(5.0)  # past the start-up listing of the operator's watches
        watcher = FirstJobs(api, namespace)
        assert operator.process is not None
        servers = control_plane_pids(args.cluster_name)

        # -- burst
        names = [f"run-{i:04d}" for i in range(args.burst)]
        ops0 = operator_requests(operator)
        cpu0, cpu_servers0 = cpu_seconds([operator.process.pid]), cpu_seconds(servers)
        text0 = apiserver_metrics(api)
        api0 = metric_sum(text0, "apiserver_request_total")
        patches0 = metric_sum(text0, "apiserver_request_total", {"resource": "tarotruns", "verb": "PATCH"})
        console.print(f"[burst] creating {args.burst} runs ...")
        started = time.monotonic()
        created = create_runs(api, namespace, names)
        out["burst_create_s"] = time.monotonic() - started
        watcher.wait(set(names), max(300.0, args.burst * 1.0), "burst", operator.log_tail)
        out["burst_all_jobs_s"] = time.monotonic() - started
        latencies = watcher.latencies(created)
        cpu = cpu_seconds([operator.process.pid]) - cpu0
        text1 = apiserver_metrics(api)
        patches = metric_sum(text1, "apiserver_request_total", {"resource": "tarotruns", "verb": "PATCH"})
        out |= {
            "burst_p50_s": statistics.median(latencies),
            "burst_p95_s": percentile(latencies, 0.95),
            "burst_max_s": max(latencies),
            "operator_cpu_ms_per_run": 1000 * cpu / args.burst,
            "control_plane_cpu_ms_per_run": 1000 * (cpu_seconds(servers) - cpu_servers0) / args.burst,
            "requests_per_run": (operator_requests(operator) - ops0) / args.burst,
            "apiserver_requests_per_run": (metric_sum(text1, "apiserver_request_total") - api0) / args.burst,
            # kopf's finalizer and the operator's status writes (its own are in requests_per_run too)
            "tarotrun_patches_per_run": (patches - patches0) / args.burst,
            "operator_rss_burst_mb": operator.rss_mb(),
        }
        console.print(
            f"[burst] p95 {out['burst_p95_s']:.2f} s, every first Job after {out['burst_all_jobs_s']:.1f} s"
        )
        time.sleep(5.0)  # the last status writes and events of the burst

        # -- steady arrival on top of the burst's live runs
        count = round(args.rate * args.steady)
        steady_names = [f"steady-{i:04d}" for i in range(count)]
        console.print(f"[steady] {count} runs at {args.rate}/s on top of {args.burst} live runs ...")
        cpu0 = cpu_seconds([operator.process.pid])
        created = create_at_rate(api, namespace, steady_names, args.rate)
        watcher.wait(set(steady_names), 120, "steady", operator.log_tail)
        latencies = watcher.latencies(created)
        out |= {
            "steady_runs": count,
            "steady_p50_s": statistics.median(latencies),
            "steady_p95_s": percentile(latencies, 0.95),
            "steady_max_s": max(latencies),
            "steady_live_runs_before": args.burst,
            "operator_cpu_ms_per_steady_run": 1000 * (cpu_seconds([operator.process.pid]) - cpu0) / count,
        }
        console.print(f"[steady] p50 {out['steady_p50_s']:.2f} s, p95 {out['steady_p95_s']:.2f} s")

        # -- fill to --live, then memory and the quiet state
        live = args.burst + count
        if args.live > live:
            fill = [f"fill-{i:04d}" for i in range(args.live - live)]
            console.print(f"[fill] {len(fill)} more runs, to {args.live} live ...")
            create_runs(api, namespace, fill)
            watcher.wait(set(fill), max(300.0, len(fill) * 1.0), "fill", operator.log_tail)
            live = args.live
        time.sleep(10.0)
        ops0, t0 = operator_requests(operator), time.monotonic()
        time.sleep(args.window)
        minutes = (time.monotonic() - t0) / 60
        out |= {
            "live_runs": live,
            "operator_rss_mb": operator.rss_mb(),
            "operator_peak_rss_mb": peak_rss_mb(operator),
            "operator_requests_per_run_per_min": (operator_requests(operator) - ops0) / live / minutes,
        }
        watcher.stop.set()

        # -- restart with every run live
        console.print(f"[restart] a new operator with {live} live runs ...")
        operator.stop()
        text0 = apiserver_metrics(api)
        started = time.monotonic()
        operator = OperatorProcess(kubeconfig, workdir / "operator-restarted.log", *operator_args)
        operator.start(ready_timeout=300)
        ready_s = time.monotonic() - started
        deadline = started + 600
        while runs_reconciled(operator) < live and time.monotonic() < deadline:
            time.sleep(0.5)
        back = runs_reconciled(operator)
        settled_s = time.monotonic() - started
        time.sleep(5.0)
        text1 = apiserver_metrics(api)
        run_patches = sum(
            metric_sum(text, "apiserver_request_total", {"resource": "tarotruns", "verb": "PATCH"}) * sign
            for text, sign in ((text1, 1), (text0, -1))
        )
        out |= {
            "restart_ready_s": ready_s,
            "restart_settled_s": settled_s,
            "restart_runs_back": back,
            "restart_operator_writes": operator_requests(operator, ("POST", "PATCH", "PUT")),
            "restart_operator_reads": operator_requests(operator, ("GET",)),
            "restart_tarotrun_patches": run_patches,  # every client's, kopf's included
        }
        console.print(f"[restart] ready {ready_s:.1f} s, every run reconciled after {settled_s:.1f} s")
    finally:
        operator.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=500, help="Runs created at once (and the floor's).")
    parser.add_argument("--rate", type=float, default=2.0, help="Steady arrivals per second.")
    parser.add_argument("--steady", type=float, default=120.0, help="Seconds of steady arrival.")
    parser.add_argument("--live", type=int, default=1000, help="Live runs for the memory figure.")
    parser.add_argument("--window", type=float, default=30.0, help="Seconds of quiet state measured.")
    parser.add_argument("--cluster-name", default="tarot-bench")
    parser.add_argument("--keep", action="store_true", help="Leave the cluster running afterwards.")
    parser.add_argument("--untuned", action="store_true", help="The control plane's default flags.")
    args = parser.parse_args()

    flags = () if args.untuned else TUNED_FLAGS
    console.print(f"starting cluster {args.cluster_name} ({'untuned' if args.untuned else 'tuned'}) ...")
    kubeconfig = Path(cluster(args.cluster_name, "up", flags).strip().splitlines()[-1].split("=", 1)[1])
    api = KubeApi(str(kubeconfig))
    try:
        add_nodes(api)
        add_service_range(api)
        apply_crd(BIN / "kubectl", kubeconfig, CRD)
        figures = floor(api, kubeconfig, args.burst, args.cluster_name)
        with tempfile.TemporaryDirectory(prefix="operator-scale-") as workdir:
            figures |= scenario(api, kubeconfig, args, Path(workdir))
    finally:
        api.close()
        if not args.keep:
            cluster(args.cluster_name, "down")

    figures |= {
        "burst_runs": args.burst,
        "burst_vs_floor": figures["burst_p95_s"] / figures["floor_p95_s"],
        "steady_rate_per_s": args.rate,
    }
    table = Table(title=f"operator scale ({os.cpu_count()} CPUs, {platform.machine()})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    first = ["burst_runs", "burst_p95_s", "floor_p95_s", "burst_vs_floor", "steady_rate_per_s",
             "steady_p95_s", "live_runs", "operator_rss_mb", "operator_cpu_ms_per_run",
             "requests_per_run"]  # fmt: skip
    ordered = {key: figures[key] for key in first} | figures
    ordered |= {"cpus": os.cpu_count(), "tuned_flags": list(flags)}
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in ordered.items()}))


if __name__ == "__main__":
    main()
