"""A real Prometheus finds a run's pods on the local cluster with the chart's PodMonitor and ServiceMonitor
selection, scrapes exactly those, and nothing else.

The pods are containers on the real node, built with what is installed for real: the operator's builders
for a run (its sandbox Deployment, Service and NetworkPolicy; a train phase's pod) and the chart's own
operator Deployment and metrics Service (rendered by helm). The sandbox runs the real sandbox image when it
is loaded into the node's containerd; the other containers (and the sandbox without its image) are busybox
serving a fixed /metrics on the port the builders declare. Around them, look-alikes that must not be
scraped: a pod with a `metrics` port but no run label, a run's pod with its port under another name, a run's
pod with no port (as data and probe Jobs), the operator's Service in another namespace, a Service of
another release. A train pod that finishes is scraped while it runs and dropped once it has Succeeded.

The node's CNI (bridge) enforces no NetworkPolicy; the run's policy is checked as an object: it admits
this Prometheus (the node's bridge address, `metrics.scrapers`) and no other run's pod.
"""

from __future__ import annotations

import contextlib
import copy
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_prometheus import (
    ClusterPrometheus,
    Source,
    check_run_monitoring,
    cluster_prometheus,
    policy_admits,
    render_chart,
    scraper_source,
)
from live_stack import wait_until
from pod_runner.kube_api import ApiError
from pytest_cluster import Cluster
from tarot_operator.config import PodScheduling
from tarot_operator.jobs import TRAIN_METRICS_PORT, JobSettings, stage_job
from tarot_operator.sandbox import (
    SANDBOX_PORT,
    sandbox_deployment,
    sandbox_network_policy,
    sandbox_service,
)

from tarot_jobs.lifecycle.types import ChildKind, ChildRef
from tarot_jobs.spec.model import TarotRunSpec

pytestmark = pytest.mark.cluster

RUN = "disco"
RELEASE = "tarot"
BUSYBOX = "localhost/tarot/busybox:v1"
SANDBOX_IMAGE = "localhost/tarot/tarot-sandbox:0.1.0"
REAL_NODE = PodScheduling(
    node_selector={"tarot.dev/node": "real"},
    tolerations=(
        {"key": "tarot.dev/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
    ),
)
# busybox's httpd sends no Content-Type, which Prometheus 3 refuses: nc answers each connection with this.
SERVE = (
    "while read -r line; do line=${line%$(printf '\\r')}; [ -z \"$line\" ] && break; done; "
    "printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain; version=0.0.4\\r\\n\\r\\n'; cat /tmp/metrics"
)
TIMEOUT = 90.0


def _serving(port: int, metrics: str, then: str = "") -> dict[str, Any]:
    """A busybox container serving `metrics` at /metrics (any path) on `port`; `then` ends it."""
    script = (
        'printf "%s\\n" "$METRICS" > /tmp/metrics; printf "%s\\n" "$SERVE" > /tmp/serve.sh; '
        f"nc -ll -p {port} -e sh /tmp/serve.sh & {then or 'wait'}"
    )
    return {
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "env": [{"name": "METRICS", "value": metrics}, {"name": "SERVE", "value": SERVE}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # busybox's image has no /tmp
    }


def _pod(name: str, labels: dict[str, str], container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", **container}],
            "nodeSelector": dict(REAL_NODE.node_selector),
            "tolerations": list(REAL_NODE.tolerations),
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            **spec,
        },
    }


def _unowned(obj: dict[str, Any]) -> dict[str, Any]:
    """A builder's object without its owner (there is no TarotRun here for the garbage collector)."""
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("ownerReferences", None)
    return obj


def _train_pod(run: dict[str, Any], spec: TarotRunSpec, phase: int, metrics: str) -> dict[str, Any]:
    """A pod of train phase `phase` as the operator's Job template makes it (labels, the `metrics` port),
    serving `metrics` until _finish ends it (Succeeded)."""
    settings = JobSettings(
        image=BUSYBOX, model_cache="/workspace/models", suspend=False, scheduling=REAL_NODE
    )
    template = stage_job(run, ChildRef(ChildKind.TRAIN, phase), spec, settings)["spec"]["template"]
    [container] = template["spec"]["containers"]
    until_told = "until [ -f /tmp/stop ]; do sleep 0.2; done; exit 0"
    serving = {**_serving(TRAIN_METRICS_PORT, metrics, until_told), "ports": container["ports"]}
    name = f"{run['metadata']['name']}-train-{phase}-x{uuid.uuid4().hex[:4]}"
    return _pod(name, template["metadata"]["labels"], serving)


def _finish(cluster: Cluster, namespace: str, pod: dict[str, Any]) -> None:
    cluster.kubectl("-n", namespace, "exec", pod["metadata"]["name"], "--", "touch", "/tmp/stop")


def _operator(deployment: dict[str, Any], metrics: str) -> dict[str, Any]:
    """The operator as the chart installs it: its Deployment's pod (labels, ports, security) serving
    `metrics` on its metrics port."""
    operator = copy.deepcopy(deployment)
    pod = operator["spec"]["template"]["spec"]
    [container] = pod["containers"]
    for key in ("args", "livenessProbe", "readinessProbe"):
        container.pop(key, None)
    pod.pop("serviceAccountName")  # the chart's ServiceAccount is not here
    [port] = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
    container.update(_serving(int(port), metrics))
    return operator


def _image_loaded(cluster: Cluster, image: str) -> bool:
    return image in cluster.ctr("images", "ls", "-q", check=False).split()


@contextlib.contextmanager
def _other_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-disco-other-{uuid.uuid4().hex[:5]}"
    cluster.api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    cluster.wait_for(
        "the default ServiceAccount",
        lambda: cluster.api.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=30,
    )
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            cluster.api.delete(f"/api/v1/namespaces/{name}")


def _create(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    plural = {
        "Pod": "/api/v1/namespaces/{ns}/pods",
        "Service": "/api/v1/namespaces/{ns}/services",
        "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
        "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    }[obj["kind"]]
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    cluster.api.create(plural.format(ns=namespace), obj)


def _pods(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{namespace}/pods"
    return list(cluster.api.get(path, params={"labelSelector": selector})["items"])


Target = tuple[str, str, str, str]  # namespace, pod, endpoint (port name), service ("" for a PodMonitor's)


def _key(labels: dict[str, str]) -> Target:
    return (labels["namespace"], labels.get("pod", ""), labels.get("endpoint", ""), labels.get("service", ""))


def _active(server: ClusterPrometheus, namespaces: set[str]) -> set[Target]:
    """The active targets in `namespaces`."""
    return {_key(t["labels"]) for t in server.active_targets() if t["labels"].get("namespace") in namespaces}


def _up(server: ClusterPrometheus, namespaces: set[str]) -> dict[Target, float]:
    scope = "|".join(sorted(namespaces))
    result = server.query(f'up{{namespace=~"{scope}"}}')["data"]["result"]
    return {_key(r["metric"]): float(r["value"][1]) for r in result}


def _wait_for_targets(
    cluster: Cluster,
    server: ClusterPrometheus,
    namespaces: set[str],
    wanted: set[Target],
    up: bool = False,
) -> None:
    """Until the active targets in `namespaces` are `wanted` (with `up`: each answered its last scrape)."""
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen["active"], seen["up"] = _active(server, namespaces), _up(server, namespaces)
        return seen["active"] == wanted and (not up or seen["up"] == dict.fromkeys(wanted, 1.0))

    try:
        wait_until("the targets", reached, TIMEOUT)
    except AssertionError:
        pods = {
            p["metadata"]["name"]: p["status"].get("phase")
            for ns in namespaces
            for p in cluster.api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
        }
        raise AssertionError(
            f"targets wanted {sorted(wanted)}\nactive {sorted(seen['active'])}\nup {seen['up']}\n"
            f"pods {pods}\nPrometheus log: {server.log.read_text()[-3000:]}"
        ) from None


def test_prometheus_scrapes_exactly_the_pods_the_chart_selects(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    helm = Path(cluster.kubectl_path).parent / "helm"
    chart = {
        o["kind"]: o for o in render_chart(helm, RELEASE, namespace) if o["kind"] in ("Service", "Deployment")
    }
    run = {"metadata": {"name": RUN, "namespace": namespace, "uid": str(uuid.uuid4())}}
    spec = TarotRunSpec.model_validate({"sandbox": {"workers": 1}})
    node = scraper_source(cluster)

    # The run: its sandbox (Deployment, Service, NetworkPolicy admitting this Prometheus) and two train pods.
    sandbox = _unowned(sandbox_deployment(run, f"{RUN}-sandbox", spec, SANDBOX_IMAGE, 1, {}, REAL_NODE))
    [sandbox_container] = sandbox["spec"]["template"]["spec"]["containers"]
    real_sandbox = _image_loaded(cluster, SANDBOX_IMAGE)
    if not real_sandbox:  # busybox on the sandbox's own port and its builder's pod spec, probes included
        sandbox_container.update(_serving(SANDBOX_PORT, "tarot_sandbox_workers 1\ntarot_sandbox_inflight 0"))
    scrapers = ({"ipBlock": {"cidr": f"{node.ip}/32"}},)
    policy = _unowned(sandbox_network_policy(run, f"{RUN}-sandbox", scrapers))

    def train_pod(phase: int) -> dict[str, Any]:
        metrics = f"tarot_train_phase {phase}\ntarot_train_step {3 + phase}\ntarot_train_total_steps 8"
        return _train_pod(run, spec, phase, metrics)

    train0, train1 = train_pod(0), train_pod(1)
    data_template = stage_job(
        run, ChildRef(ChildKind.DATA), spec, JobSettings(image=BUSYBOX, model_cache="/m", suspend=False)
    )["spec"]["template"]

    operator = _operator(
        chart["Deployment"],
        'tarot_run_phase{namespace="elsewhere",run="r",phase="Training"} 1\n'
        'tarot_operator_reconciles_total{outcome="success"} 4',
    )
    metrics_service = chart["Service"]
    other_release = copy.deepcopy(metrics_service)
    other_release["metadata"]["name"] = "other-metrics"
    other_release["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"

    # Look-alikes: none of them may become a target.
    exporter = _pod(
        "plain-exporter", {"app": "exporter"}, {**_serving(9100, "x 1"), "ports": [_port("metrics", 9100)]}
    )
    web = _pod("run-web", {"tarot.dev/run": RUN}, {**_serving(8080, "x 1"), "ports": [_port("web", 8080)]})
    data = _pod(f"{RUN}-data-xyz", data_template["metadata"]["labels"], {**_serving(8080, "x 1")})

    with (
        _other_namespace(cluster) as elsewhere,
        cluster_prometheus(cluster, tmp_path, RELEASE, namespace) as server,
    ):
        for obj in (policy, sandbox_service(run, f"{RUN}-sandbox"), sandbox, train0, train1, operator):
            _create(cluster, namespace, obj)
        for obj in (metrics_service, other_release, exporter, web, data):
            _create(cluster, namespace, obj)
        # The operator's Service (and a pod it selects) in a namespace that is not the release's.
        stray = _pod(
            "stray-operator", operator["spec"]["template"]["metadata"]["labels"], _serving(8080, "x 1")
        )
        stray["spec"]["containers"][0]["ports"] = [_port("metrics", 8080)]
        _create(cluster, elsewhere, stray)
        _create(cluster, elsewhere, metrics_service)
        created = time.time()

        sandbox_pod = cluster.wait_for(
            "the sandbox pod",
            lambda: _pods(cluster, namespace, "app.kubernetes.io/component=sandbox"),
            TIMEOUT,
        )[0]["metadata"]["name"]
        operator_pod = cluster.wait_for(
            "the operator pod",
            lambda: _pods(cluster, namespace, "app.kubernetes.io/component=operator"),
            TIMEOUT,
        )[0]["metadata"]["name"]
        namespaces = {namespace, elsewhere}
        service = metrics_service["metadata"]["name"]
        selected = {
            (namespace, sandbox_pod, "http", ""),
            (namespace, train0["metadata"]["name"], "metrics", ""),
            (namespace, train1["metadata"]["name"], "metrics", ""),
            (namespace, operator_pod, "metrics", service),  # once: not again through other-metrics
        }
        _wait_for_targets(cluster, server, namespaces, selected, up=True)
        discovery_s = time.time() - created

        # What was scraped carries the PodMonitor's labels (run, pod), and the operator's own namespace label
        # survives (honorLabels) beside the Service's.
        steps = server.query(f'tarot_train_step{{namespace="{namespace}", run="{RUN}"}}')["data"]["result"]
        assert {(r["metric"]["pod"], r["value"][1]) for r in steps} == {
            (train0["metadata"]["name"], "3"),
            (train1["metadata"]["name"], "4"),
        }
        workers = server.query(f'tarot_sandbox_workers{{namespace="{namespace}", run="{RUN}"}}')["data"][
            "result"
        ]
        assert [r["metric"]["pod"] for r in workers] == [sandbox_pod]
        [phase] = server.query('tarot_run_phase{run="r"}')["data"]["result"]
        assert phase["metric"]["namespace"] == "elsewhere"  # the run's, not the operator pod's
        assert (phase["metric"]["pod"], phase["metric"]["service"]) == (
            operator_pod,
            metrics_service["metadata"]["name"],
        )

        # A train pod that has finished is no target any more; what it served stays in Prometheus.
        _finish(cluster, namespace, train1)
        finished = time.time()
        _wait_for_targets(
            cluster, server, namespaces, selected - {(namespace, train1["metadata"]["name"], "metrics", "")}
        )
        dropped_s = time.time() - finished
        last = server.query(f'max_over_time(tarot_train_step{{pod="{train1["metadata"]["name"]}"}}[5m])')
        assert last["data"]["result"][0]["value"][1] == "4"
        never = "|".join(p["metadata"]["name"] for p in (exporter, web, data, stray))
        assert not server.query(f'up{{pod=~"{never}"}}[5m]')["data"]["result"]

    # The run's policy admits this Prometheus to the sandbox's port, and no other run's pod; without
    # metrics.scrapers it would not (on a CNI that enforces policies, the sandbox would not be scraped).
    applied = cluster.api.get(
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{RUN}-sandbox"
    )
    assert policy_admits(applied, node, SANDBOX_PORT, "http")
    other_run = Source(ip="10.244.0.200", namespace=namespace, pod_labels={"tarot.dev/run": "other"})
    assert not policy_admits(applied, other_run, SANDBOX_PORT, "http")
    same_run = Source(ip="10.244.0.201", namespace=namespace, pod_labels={"tarot.dev/run": RUN})
    assert policy_admits(applied, same_run, SANDBOX_PORT, "http")
    assert not policy_admits(
        _unowned(sandbox_network_policy(run, f"{RUN}-sandbox")), node, SANDBOX_PORT, "http"
    )
    print(
        f"scraped {len(selected)} targets {discovery_s:.1f} s after creating them, dropped the "
        f"finished train pod {dropped_s:.1f} s after it ended (sandbox: "
        f"{'the real image' if real_sandbox else 'busybox'})"
    )


def _port(name: str, number: int) -> dict[str, Any]:
    return {"name": name, "containerPort": number, "protocol": "TCP"}


def test_check_run_monitoring_passes_on_a_run_s_pods_and_names_what_is_missing(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """check_run_monitoring (what the cluster quickstart's e2e test calls) against stand-ins of a finished
    4-phase run: the chart's operator pod serving the run's tarot_run_*, its sandbox pod and one train pod per
    phase (built by the operator's builders, busybox inside) serving what the real ones serve. Every
    dashboard query but the GPU ones must return data; a run that had a fifth phase must fail, naming it."""
    helm = Path(cluster.kubectl_path).parent / "helm"
    chart = {
        o["kind"]: o for o in render_chart(helm, RELEASE, namespace) if o["kind"] in ("Service", "Deployment")
    }
    name = "simrun"
    run = {"metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}}
    spec = TarotRunSpec.model_validate({"sandbox": {"workers": 1}})
    ends = [5, 10, 15, 24]
    scope = f'namespace="{namespace}",run="{name}"'
    operator = _operator(
        chart["Deployment"],
        "\n".join(
            [
                *(
                    f'tarot_run_phase{{{scope},phase="{p}"}} {int(p == "Succeeded")}'
                    for p in ("Training", "Succeeded")
                ),
                f"tarot_run_capability_score{{{scope}}} 0.3",
                f"tarot_run_curriculum_phase{{{scope}}} 3",
                f"tarot_run_steps_completed{{{scope}}} 24",
                f"tarot_run_steps_total{{{scope}}} 24",
                f"tarot_run_reward_mean{{{scope}}} 0.4",
                f'tarot_run_evaluation_pass_at_1{{{scope},stage="before",tier="overall"}} 0.1',
                f'tarot_run_evaluation_pass_at_1{{{scope},stage="after",tier="overall"}} 0.2',
                'tarot_operator_reconciles_total{outcome="success"} 9',
            ]
        ),
    )
    sandbox = _unowned(sandbox_deployment(run, f"{name}-sandbox", spec, BUSYBOX, 1, {}, REAL_NODE))
    sandbox["spec"]["template"]["spec"]["containers"][0].update(
        _serving(
            SANDBOX_PORT,
            "\n".join(
                [
                    'tarot_sandbox_executions_total{verdict="passed"} 10',
                    *(
                        f'tarot_sandbox_{h}_bucket{{le="{le}"}} {n}'
                        for h in ("test_wall_seconds", "program_latency_seconds")
                        for le, n in (("0.1", 5), ("+Inf", 10))
                    ),
                    "tarot_sandbox_queue_depth 0",
                    "tarot_sandbox_inflight 0",
                    'tarot_sandbox_rejected_requests_total{reason="overloaded"} 0',
                    "tarot_sandbox_workers 1",
                ]
            ),
        )
    )
    trainers = [
        _train_pod(
            run,
            spec,
            phase,
            f"tarot_train_phase {phase}\ntarot_train_step {end}\ntarot_train_total_steps 24\n"
            'tarot_train_reward_mean 0.3\ntarot_train_pass_rate{tier="basic"} 0.5\ntarot_train_kl 0.01\n'
            "tarot_train_loss 0.1\ntarot_train_tokens_per_second 100",
        )
        for phase, end in enumerate(ends)
    ]
    policy = _unowned(
        sandbox_network_policy(
            run, f"{name}-sandbox", ({"ipBlock": {"cidr": f"{scraper_source(cluster).ip}/32"}},)
        )
    )
    status = {"curriculum": {"phases": [{"steps": b - a} for a, b in zip([0, *ends], ends, strict=False)]}}
    finished_run = {**run, "spec": {"training": {}}, "status": status}

    with cluster_prometheus(cluster, tmp_path, RELEASE, namespace) as server:
        start = time.time()
        for obj in (policy, chart["Service"], operator, sandbox, *trainers):
            _create(cluster, namespace, obj)
        cluster.wait_for(
            "the run's pods to run",
            lambda: (
                len([p for p in _pods(cluster, namespace, "") if p["status"].get("phase") == "Running"]) == 6
            ),
            TIMEOUT,
        )
        pods = {p["metadata"]["name"] for p in _pods(cluster, namespace, "")}
        service = chart["Service"]["metadata"]["name"]

        def target(pod: str) -> Target:
            if pod.startswith(f"{RELEASE}-"):  # the operator, through the release's metrics Service
                return (namespace, pod, "metrics", service)
            return (namespace, pod, "metrics" if "-train-" in pod else "http", "")

        wanted = {target(pod) for pod in pods}
        _wait_for_targets(cluster, server, {namespace}, wanted, up=True)
        time.sleep(3)  # a few scrapes: rate() needs two samples
        for trainer in trainers:  # the phases end, as their Jobs' pods do
            _finish(cluster, namespace, trainer)

        report = check_run_monitoring(
            server, cluster, finished_run, start, release=RELEASE, release_namespace=namespace
        )
        assert sorted(report.trainer_pods) == [0, 1, 2, 3]
        assert report.last_steps == dict(enumerate(ends))
        assert len(report.sandbox_pods) == 1 and len(report.operator_pods) == 1
        assert report.sandbox_policy_admits_scraper is True
        assert len(report.gpu_queries_skipped) == 2 and len(report.queries_with_data) >= 20
        print(report.summary())

        phases = [*status["curriculum"]["phases"], {"steps": 4}]
        five_phases = {**finished_run, "status": {"curriculum": {"phases": phases}}}
        with pytest.raises(AssertionError, match=r"want every phase 0\.\.4(.|\n)*phases ended at"):
            check_run_monitoring(
                server, cluster, five_phases, start, release=RELEASE, release_namespace=namespace
            )
