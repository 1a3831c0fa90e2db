"""A real Prometheus that finds its targets in a cluster, as a kube-prometheus-stack Prometheus does.

`cluster_prometheus(cluster, workdir)` starts a real Prometheus on loopback with
`kubernetes_sd_configs` (role pod for the chart's PodMonitor, role endpoints for its ServiceMonitor)
against the cluster's API server, authenticated with the kubeconfig's client certificate. Debian's
`prometheus` is built without Kubernetes discovery, so this one is built from Prometheus' Go module by
hack/build-prometheus.sh (once, cached; its version in hack/versions.env). The selection is not
written here: `helm template` renders the chart's PodMonitor and ServiceMonitor
(with the release's name, namespace and values files) and `monitor_scrape_configs` translates them
the way prometheus-operator generates its scrape configs (label selector → keep/drop relabelings,
port name, namespaces, the default `namespace`/`pod`/`container`/`job`/`endpoint` labels, the
monitor's own relabelings, pods that have finished dropped). Every scrape is 1 s apart.

`check_run_monitoring(prometheus, cluster, run, start)` is what a test calls after a run
succeeded: the operator, sandbox and trainer pods were scraped, each train phase's last step
reached Prometheus, every dashboard query returns data for the run, and the run's sandbox
NetworkPolicy admits this Prometheus.

Scrapes come from this machine: pods on the real node are reached from the node's bridge address
(its InternalIP), and that is the source a NetworkPolicy sees (`scraper_source`).

Not named conftest.py, and not a test module: tests import it (tests/monitoring on sys.path).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import math
import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from live_stack import Prometheus, concrete, dashboard_targets, process, wait_until
from pytest_cluster import free_port
from tarot_operator.sandbox import SANDBOX_PORT

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tarot"
CLUSTER_VALUES = REPO / "hack" / "cluster-values.yaml"
INTERVAL = "1s"
NODE = "real-node-0"
GPU_METRIC_PREFIX = "DCGM_"  # the dashboard's GPU panels read the DCGM exporter: no GPU here

JSON = dict[str, Any]


# ---- the chart's monitors, rendered by helm -----------------------------------------------------------


def prometheus_binary() -> Path:
    """Prometheus with Kubernetes service discovery, built once by hack/build-prometheus.sh."""
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "build-prometheus.sh")], capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, f"hack/build-prometheus.sh failed:\n{result.stderr[-4000:]}"
    return Path(result.stdout.strip().splitlines()[-1]) / "prometheus"


def render_chart(
    helm: Path,
    release: str = "tarot",
    namespace: str = "tarot-system",
    values_files: Sequence[Path] = (CLUSTER_VALUES,),
    interval: str = INTERVAL,
) -> list[JSON]:
    """Every object `helm install` with these values would create, with the monitors switched on at
    `interval` (the metrics Service, the operator's Deployment, the PodMonitor and ServiceMonitor...)."""
    enable = {
        "metrics": {
            "enabled": True,
            "serviceMonitor": {"enabled": True, "interval": interval},
            "podMonitor": {"enabled": True, "interval": interval},
        }
    }
    args = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    for values in values_files:
        args += ["--values", str(values)]
    result = subprocess.run(
        [*args, "--values", "-"], input=yaml.safe_dump(enable), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_monitors(helm: Path, *args: Any, **kwargs: Any) -> list[JSON]:
    """The chart's PodMonitor and ServiceMonitor (render_chart's arguments)."""
    monitors = [
        o for o in render_chart(helm, *args, **kwargs) if o["kind"] in ("PodMonitor", "ServiceMonitor")
    ]
    assert sorted(m["kind"] for m in monitors) == ["PodMonitor", "ServiceMonitor"], monitors
    return monitors


# ---- PodMonitor / ServiceMonitor → Prometheus scrape configs (as prometheus-operator writes them) ------


def _label_name(name: str) -> str:
    """Prometheus' form of a Kubernetes label name in meta labels (tarot.dev/run → tarot_dev_run)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _selector_relabelings(selector: Mapping[str, Any], role: str) -> list[JSON]:
    """A label selector as keep/drop rules on the pod's (role pod) or service's (endpoints) labels."""
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise NotImplementedError(f"selector fields {sorted(unknown)}")
    prefix = f"__meta_kubernetes_{role}_label"
    rules: list[JSON] = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        name = _label_name(key)
        rules.append(
            {
                "action": "keep",
                "source_labels": [f"{prefix}_{name}", f"{prefix}present_{name}"],
                "regex": f"({re.escape(value)});true",
            }
        )
    for expression in selector.get("matchExpressions") or []:
        name, operator = _label_name(expression["key"]), expression["operator"]
        values = "|".join(re.escape(v) for v in expression.get("values") or [])
        if operator in ("In", "NotIn"):
            rules.append(
                {
                    "action": "keep" if operator == "In" else "drop",
                    "source_labels": [f"{prefix}_{name}", f"{prefix}present_{name}"],
                    "regex": f"({values});true",
                }
            )
        elif operator in ("Exists", "DoesNotExist"):
            rules.append(
                {
                    "action": "keep" if operator == "Exists" else "drop",
                    "source_labels": [f"{prefix}present_{name}"],
                    "regex": "true",
                }
            )
        else:
            raise NotImplementedError(f"selector operator {operator}")
    return rules


_RELABEL_FIELDS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


def _relabelings(rules: Sequence[Mapping[str, Any]]) -> list[JSON]:
    """A monitor's own relabelings (camelCase API fields) in Prometheus' configuration form."""
    out = []
    for rule in rules:
        unknown = set(rule) - set(_RELABEL_FIELDS)
        if unknown:
            raise NotImplementedError(f"relabeling fields {sorted(unknown)}")
        converted = {_RELABEL_FIELDS[k]: v for k, v in rule.items()}
        if "action" in converted:
            converted["action"] = str(converted["action"]).lower()
        out.append(converted)
    return out


def _namespaces(monitor: Mapping[str, Any]) -> list[str] | None:
    """The namespaces a monitor looks in: None for any, else names (its own when it names none)."""
    selector = monitor["spec"].get("namespaceSelector") or {}
    if selector.get("any"):
        return None
    return list(selector.get("matchNames") or [monitor["metadata"]["namespace"]])


_POD_ENDPOINT_FIELDS = {"port", "path", "interval", "relabelings", "honorLabels", "scheme"}
_SERVICE_ENDPOINT_FIELDS = _POD_ENDPOINT_FIELDS
_DROP_FINISHED_PODS = {
    "action": "drop",
    "source_labels": ["__meta_kubernetes_pod_phase"],
    "regex": "(Failed|Succeeded)",
}


def monitor_scrape_configs(monitors: Sequence[Mapping[str, Any]], sd: Mapping[str, Any]) -> list[JSON]:
    """One scrape config per monitor endpoint, as prometheus-operator generates it. `sd` is the
    kubernetes_sd_configs entry without `role` and `namespaces` (API server and credentials). A field
    this translation does not know fails loudly, so the chart cannot drift away from what is tested."""
    configs = []
    for monitor in monitors:
        kind, spec = monitor["kind"], monitor["spec"]
        meta = monitor["metadata"]
        pod = kind == "PodMonitor"
        known_spec = {"selector", "namespaceSelector", "podMetricsEndpoints" if pod else "endpoints"}
        if set(spec) - known_spec:
            raise NotImplementedError(f"{kind} fields {sorted(set(spec) - known_spec)}")
        endpoints = spec["podMetricsEndpoints" if pod else "endpoints"]
        role = "pod" if pod else "endpoints"
        discovery: JSON = {**sd, "role": role}
        namespaces = _namespaces(monitor)
        if namespaces is not None:
            discovery["namespaces"] = {"names": namespaces}
        for index, endpoint in enumerate(endpoints):
            unknown = set(endpoint) - (_POD_ENDPOINT_FIELDS if pod else _SERVICE_ENDPOINT_FIELDS)
            if unknown or endpoint.get("scheme", "http") != "http":
                raise NotImplementedError(f"{kind} endpoint fields {sorted(unknown)}")
            port = endpoint["port"]
            rules: list[JSON] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
            rules += _selector_relabelings(spec.get("selector") or {}, "pod" if pod else "service")
            if pod:
                rules += [
                    {
                        "action": "keep",
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": re.escape(port),
                    },
                    _DROP_FINISHED_PODS,
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
                ]
            else:
                kind_and_name = [
                    "__meta_kubernetes_endpoint_address_target_kind",
                    "__meta_kubernetes_endpoint_address_target_name",
                ]
                rules += [
                    {
                        "action": "keep",
                        "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                        "regex": re.escape(port),
                    },
                    {
                        "source_labels": kind_and_name,
                        "separator": ";",
                        "regex": "Node;(.*)",
                        "target_label": "node",
                    },
                    {
                        "source_labels": kind_and_name,
                        "separator": ";",
                        "regex": "Pod;(.*)",
                        "target_label": "pod",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                    _DROP_FINISHED_PODS,
                    {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"},
                ]
            rules.append({"target_label": "endpoint", "replacement": port})
            rules += _relabelings(endpoint.get("relabelings") or [])
            config: JSON = {
                "job_name": f"{kind[0].lower()}{kind[1:]}/{meta['namespace']}/{meta['name']}/{index}",
                "honor_labels": bool(endpoint.get("honorLabels", False)),
                "metrics_path": endpoint.get("path", "/metrics"),
                "scheme": "http",
                "kubernetes_sd_configs": [discovery],
                "relabel_configs": rules,
            }
            if "interval" in endpoint:
                config["scrape_interval"] = endpoint["interval"]
            configs.append(config)
    return configs


# ---- the API server's address and credentials, from the kubeconfig -----------------------------------


def kubernetes_sd(kubeconfig: Path, workdir: Path) -> JSON:
    """api_server and tls_config for kubernetes_sd_configs from the kubeconfig's current context; inline
    certificates (`*-data`) are written to files under `workdir`."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config["current-context"]
    [context] = [c["context"] for c in config["contexts"] if c["name"] == context_name]
    [cluster] = [c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"]]
    [user] = [u["user"] for u in config["users"] if u["name"] == context["user"]]

    def file_of(entry: Mapping[str, Any], key: str, name: str) -> str | None:
        if entry.get(f"{key}-data"):
            path = workdir / name
            path.write_bytes(base64.b64decode(entry[f"{key}-data"]))
            path.chmod(0o600)
            return str(path)
        if entry.get(key):
            return str((kubeconfig.parent / entry[key]).resolve())
        return None

    tls: JSON = {}
    for key, entry, field_name, name in (
        ("certificate-authority", cluster, "ca_file", "ca.crt"),
        ("client-certificate", user, "cert_file", "client.crt"),
        ("client-key", user, "key_file", "client.key"),
    ):
        path = file_of(entry, key, name)
        if path is not None:
            tls[field_name] = path
    if cluster.get("insecure-skip-tls-verify"):
        tls["insecure_skip_verify"] = True
    sd: JSON = {"api_server": cluster["server"], "tls_config": tls}
    if user.get("token"):
        sd["authorization"] = {"credentials": user["token"]}
    return sd


# ---- the server ---------------------------------------------------------------------------------------


class ClusterPrometheus(Prometheus):
    """The query client (live_stack.Prometheus: query, query_range, label_values) plus target views."""

    def __init__(self, url: str, scrape_configs: list[JSON], log: Path) -> None:
        super().__init__(url)
        self.scrape_configs = scrape_configs
        self.log = log

    def targets(self) -> JSON:
        """/api/v1/targets: {"activeTargets": [...], "droppedTargets": [...]}."""
        return dict(self._get("/api/v1/targets", {})["data"])

    def active_targets(self) -> list[JSON]:
        return list(self.targets()["activeTargets"])


@contextlib.contextmanager
def cluster_prometheus(
    cluster: Any,
    workdir: Path,
    release: str = "tarot",
    release_namespace: str = "tarot-system",
    values_files: Sequence[Path] = (CLUSTER_VALUES,),
    interval: str = INTERVAL,
) -> Iterator[ClusterPrometheus]:
    """A Prometheus discovering `cluster`'s pods and endpoints with the chart's monitors' selection, for
    the release `release` in `release_namespace` installed with `values_files` (the ServiceMonitor
    selects that release's metrics Service; the PodMonitor every run's pods). Scrapes every second.
    `cluster` is hack/pytest_cluster.py's Cluster (kubeconfig, kubectl_path; helm beside kubectl)."""
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    helm = Path(cluster.kubectl_path).parent / "helm"
    monitors = render_monitors(helm, release, release_namespace, values_files, interval)
    scrape_configs = monitor_scrape_configs(monitors, kubernetes_sd(Path(cluster.kubeconfig), workdir))
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "scrape_configs": scrape_configs,
            },
            sort_keys=False,
        )
    )
    port = free_port()
    command = [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=2h",
        "--log.level=warn",
    ]
    log = workdir / "prometheus.log"
    with process(command, log) as proc:
        server = ClusterPrometheus(f"http://127.0.0.1:{port}", scrape_configs, log)
        wait_until("Prometheus ready", lambda: server.http.get("/-/ready").status_code == 200, 60, proc)
        try:
            yield server
        finally:
            server.http.close()


# ---- NetworkPolicy: does a policy admit this scraper? -------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a connection comes from: an address, and for a pod its labels and its namespace's."""

    ip: str
    namespace: str | None = None
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] | None = None  # None: not a pod (a host process)


def _matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if {
            "In": key in labels and labels[key] in values,
            "NotIn": not (key in labels and labels[key] in values),
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator] is False:
            return False
    return True


def _peer_admits(peer: Mapping[str, Any], source: Source, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(source.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"], strict=False) and not any(
            address in ipaddress.ip_network(e, strict=False) for e in block.get("except") or []
        )
    if source.pod_labels is None:
        return False  # selectors name pods; a host process is matched by ipBlock only
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], source.namespace_labels):
            return False
    elif source.namespace != policy_namespace:
        return False
    return _matches(peer.get("podSelector") or {}, source.pod_labels)


def _port_matches(rule_port: Mapping[str, Any], port: int, port_name: str | None) -> bool:
    if rule_port.get("protocol", "TCP") != "TCP":
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted == port_name
    return bool(wanted <= port <= rule_port.get("endPort", wanted))


def policy_admits(policy: Mapping[str, Any], source: Source, port: int, port_name: str | None = None) -> bool:
    """Whether `policy` (networking.k8s.io/v1) lets `source` connect to a selected pod's TCP `port`
    (named `port_name` in the pod). Only this policy: Kubernetes admits what any policy selecting the
    pod admits."""
    spec = policy["spec"]
    if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
        return True
    for rule in spec.get("ingress") or []:
        ports = rule.get("ports")
        if ports and not any(_port_matches(p, port, port_name) for p in ports):
            continue
        peers = rule.get("from")
        if not peers or any(_peer_admits(p, source, policy["metadata"]["namespace"]) for p in peers):
            return True
    return False


def scraper_source(cluster: Any, node: str = NODE) -> Source:
    """This machine as the pods see it: the real node's InternalIP (the bridge address)."""
    addresses = cluster.api.get(f"/api/v1/nodes/{node}")["status"]["addresses"]
    [ip] = [a["address"] for a in addresses if a["type"] == "InternalIP"]
    return Source(ip=ip)


# ---- what a test asserts after a run ------------------------------------------------------------------


@dataclass
class MonitoringReport:
    operator_pods: list[str]
    sandbox_pods: list[str]
    trainer_pods: dict[int, list[str]]  # phase → pods
    last_steps: dict[int, int]  # phase → the last step Prometheus holds from its trainer
    queries_with_data: list[str]
    gpu_queries_skipped: list[str]
    sandbox_policy_admits_scraper: bool | None

    def summary(self) -> str:
        return (
            f"scraped: operator {self.operator_pods}, sandbox {self.sandbox_pods}, trainers "
            f"{self.trainer_pods}; last step per phase {self.last_steps}; "
            f"{len(self.queries_with_data)} dashboard queries with data, "
            f"{len(self.gpu_queries_skipped)} GPU queries skipped (no DCGM exporter)"
        )


def _scraped_pods(server: ClusterPrometheus, selector: str, start: float, end: float) -> list[str]:
    """Pods of the targets matching `selector` that answered at least one scrape in [start, end]."""
    window = f"{max(1, math.ceil(end - start))}s"
    result = server.query(f"max by (pod) (max_over_time(up{{{selector}}}[{window}])) == 1", at=end)
    return sorted(r["metric"]["pod"] for r in result["data"]["result"])


def last_train_steps(
    server: ClusterPrometheus, namespace: str, run: str, start: float, end: float
) -> dict[int, int]:
    """Phase → the highest `tarot_train_step` Prometheus holds from that phase's trainer pods."""
    window = f"{max(1, math.ceil(end - start))}s"
    scope = f'namespace="{namespace}", run="{run}"'
    steps = server.query(f"max by (pod) (max_over_time(tarot_train_step{{{scope}}}[{window}]))", at=end)
    phases = server.query(f"max by (pod) (max_over_time(tarot_train_phase{{{scope}}}[{window}]))", at=end)
    phase_of = {r["metric"]["pod"]: int(float(r["value"][1])) for r in phases["data"]["result"]}
    last: dict[int, int] = {}
    for r in steps["data"]["result"]:
        phase = phase_of.get(r["metric"]["pod"])
        if phase is not None:
            last[phase] = max(last.get(phase, 0), int(float(r["value"][1])))
    return dict(sorted(last.items()))


def expected_last_steps(run: Mapping[str, Any]) -> dict[int, int]:
    """Phase → its last logged step (run-wide numbering) from the run's status and logging interval."""
    every = int((run["spec"].get("training") or {}).get("loggingSteps", 1))
    expected, end = {}, 0
    for index, phase in enumerate(run["status"]["curriculum"]["phases"]):
        start, end = end, end + int(phase["steps"])
        if end - end % every > start:
            expected[index] = end - end % every
    return expected


def dashboard_query_data(
    server: ClusterPrometheus, namespace: str, run: str, start: float, end: float, gpu: bool = False
) -> tuple[list[str], list[str], list[str]]:
    """(with data, without data, skipped GPU queries) of every dashboard query for the run."""
    with_data: list[str] = []
    without: list[str] = []
    skipped: list[str] = []
    for title, expr in dashboard_targets():
        line = f"{title}: {expr}"
        if GPU_METRIC_PREFIX in expr and not gpu:
            skipped.append(line)
            continue
        result = server.query_range(concrete(expr, namespace, run), start, end, 1)["data"]["result"]
        (with_data if any(series["values"] for series in result) else without).append(line)
    return with_data, without, skipped


def check_run_monitoring(
    server: ClusterPrometheus,
    cluster: Any,
    run: Mapping[str, Any],
    start: float,
    end: float | None = None,
    release: str = "tarot",
    release_namespace: str = "tarot-system",
    gpu: bool = False,
    timeout: float = 60.0,
) -> MonitoringReport:
    """Assert that Prometheus monitored `run` (the TarotRun object, Succeeded) between `start` and `end`
    (Unix times; `end` defaults to when the operator's Succeeded has been scraped):

    - the operator pod (through the release's metrics Service), the run's sandbox pods (port `http`) and a
      trainer pod of every curriculum phase (port `metrics`) answered scrapes;
    - each phase's last step reached Prometheus from its trainer (the pod had ended by then);
    - every dashboard query returns data for the run (GPU queries skipped unless `gpu`: no DCGM exporter);
    - the dashboard's variables list the run's namespace and name;
    - the run's sandbox NetworkPolicy admits this Prometheus to the sandbox's port.
    """
    namespace, name = run["metadata"]["namespace"], run["metadata"]["name"]
    scope = f'namespace="{namespace}", run="{name}"'
    succeeded = f'tarot_run_phase{{{scope}, phase="Succeeded"}} == 1'
    wait_until(
        "Prometheus to scrape the operator's Succeeded",
        lambda: server.query(succeeded)["data"]["result"],
        timeout,
    )
    end = time.time() if end is None else end
    problems: list[str] = []

    # The ServiceMonitor's targets carry `service`; the PodMonitor's do not.
    operator = f'namespace="{release_namespace}", service!="", endpoint="metrics"'
    operator_pods = [p for p in _scraped_pods(server, operator, start, end) if p.startswith(release)]
    if not operator_pods:
        problems.append(f"no operator pod of release {release} in {release_namespace} was scraped")
    sandbox_pods = _scraped_pods(server, f'{scope}, endpoint="http"', start, end)
    if not [p for p in sandbox_pods if p.startswith(f"{name}-sandbox-")]:
        problems.append(f"no sandbox pod of {namespace}/{name} was scraped: {sandbox_pods}")
    trainers = _scraped_pods(server, f'{scope}, endpoint="metrics"', start, end)
    phases = run["status"]["curriculum"]["phases"]
    trainer_pods: dict[int, list[str]] = {}
    for pod in trainers:
        match = re.fullmatch(rf"{re.escape(name)}-train-(\d+)-.*", pod)
        if match:
            trainer_pods.setdefault(int(match.group(1)), []).append(pod)
    if sorted(trainer_pods) != list(range(len(phases))):
        problems.append(
            f"trainer pods scraped per phase {trainer_pods}, want every phase 0..{len(phases) - 1}"
        )

    last = last_train_steps(server, namespace, name, start, end)
    want = expected_last_steps(run)
    if {p: last.get(p) for p in want} != want:
        problems.append(f"the trainers' last steps Prometheus holds {last}, the phases ended at {want}")

    with_data, without, skipped = dashboard_query_data(server, namespace, name, start, end, gpu)
    if without:
        problems.append("dashboard queries without data:\n  " + "\n  ".join(without))
    for variable, wanted in (("namespace", namespace), ("run", name)):
        listed = server.label_values(
            variable, '{__name__=~"tarot_run_phase|tarot_train_step|tarot_sandbox_workers"}'
        )
        if wanted not in listed:
            problems.append(f"the dashboard variable {variable} does not list {wanted}: {listed}")

    admitted: bool | None = None
    policy = cluster.api.get_or_none(
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}-sandbox"
    )
    if policy is not None:
        admitted = policy_admits(policy, scraper_source(cluster), SANDBOX_PORT, "http")
        if not admitted:
            problems.append(
                f"the sandbox NetworkPolicy does not admit this Prometheus: {json.dumps(policy['spec'])}"
            )
    assert not problems, "\n".join(problems) + f"\n(Prometheus log: {server.log})"
    return MonitoringReport(operator_pods, sandbox_pods, trainer_pods, last, with_data, skipped, admitted)
