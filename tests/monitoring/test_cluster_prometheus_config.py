"""cluster_prometheus.py without a cluster: the chart's monitors as scrape configs, the kubeconfig's
credentials, the NetworkPolicy check and the last steps a run's phases must leave in Prometheus."""

from __future__ import annotations

import base64
import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_prometheus import (
    REPO,
    Source,
    expected_last_steps,
    kubernetes_sd,
    monitor_scrape_configs,
    policy_admits,
    render_monitors,
)

SD = {"api_server": "https://127.0.0.1:6443", "tls_config": {}}


@pytest.fixture(scope="module")
def helm() -> Path:
    built = subprocess.run(
        ["bash", str(REPO / "hack" / "build-cluster-tools.sh")], capture_output=True, text=True, timeout=3600
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().splitlines()[-1]) / "helm"


def _by_job(configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["job_name"]: c for c in configs}


def _keeps(config: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str]]:
    return [
        (r["action"], tuple(r["source_labels"]), r["regex"])
        for r in config["relabel_configs"]
        if r.get("action") in ("keep", "drop")
    ]


def test_the_chart_s_monitors_become_pod_and_endpoints_discovery(helm: Path) -> None:
    configs = _by_job(monitor_scrape_configs(render_monitors(helm), SD))
    assert sorted(configs) == [
        "podMonitor/tarot-system/tarot-runs/0",
        "podMonitor/tarot-system/tarot-runs/1",
        "serviceMonitor/tarot-system/tarot/0",
    ]
    drop_finished = ("drop", ("__meta_kubernetes_pod_phase",), "(Failed|Succeeded)")
    for index, port in enumerate(("metrics", "http")):
        pods = configs[f"podMonitor/tarot-system/tarot-runs/{index}"]
        [discovery] = pods["kubernetes_sd_configs"]
        assert discovery["role"] == "pod" and "namespaces" not in discovery  # every namespace
        assert discovery["api_server"] == SD["api_server"]
        assert _keeps(pods) == [
            ("keep", ("__meta_kubernetes_pod_labelpresent_tarot_dev_run",), "true"),
            ("keep", ("__meta_kubernetes_pod_container_port_name",), port),
            drop_finished,
        ]
        assert {
            "source_labels": ["__meta_kubernetes_pod_label_tarot_dev_run"],
            "target_label": "run",
        } in pods["relabel_configs"]
        assert (pods["scrape_interval"], pods["metrics_path"], pods["honor_labels"]) == (
            "1s",
            "/metrics",
            False,
        )

    operator = configs["serviceMonitor/tarot-system/tarot/0"]
    [discovery] = operator["kubernetes_sd_configs"]
    assert discovery["role"] == "endpoints" and discovery["namespaces"] == {"names": ["tarot-system"]}
    assert operator["honor_labels"] is True  # tarot_run_* keep the run's namespace
    label = "__meta_kubernetes_service_label"
    assert _keeps(operator) == [
        (
            "keep",
            (f"{label}_app_kubernetes_io_component", f"{label}present_app_kubernetes_io_component"),
            "(operator);true",
        ),
        (
            "keep",
            (f"{label}_app_kubernetes_io_instance", f"{label}present_app_kubernetes_io_instance"),
            "(tarot);true",
        ),
        (
            "keep",
            (f"{label}_app_kubernetes_io_name", f"{label}present_app_kubernetes_io_name"),
            "(tarot);true",
        ),
        ("keep", ("__meta_kubernetes_endpoint_port_name",), "metrics"),
        drop_finished,
    ]


def test_watched_namespaces_limit_the_pod_discovery(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"watchNamespaces": ["team-a", "team-b"]}))
    configs = _by_job(monitor_scrape_configs(render_monitors(helm, "tarot", "ops", [values]), SD))
    [discovery] = configs["podMonitor/ops/tarot-runs/0"]["kubernetes_sd_configs"]
    assert discovery["namespaces"] == {"names": ["team-a", "team-b"]}


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["spec"]["podMetricsEndpoints"][0].update(targetPort=8090),
        lambda m: m["spec"]["podMetricsEndpoints"][0].update(scheme="https"),
        lambda m: m["spec"].update(podTargetLabels=["app"]),
        lambda m: m["spec"]["selector"]["matchExpressions"][0].update(operator="Gt"),
        lambda m: m["spec"]["podMetricsEndpoints"][0]["relabelings"][0].update(regexp="x"),
    ],
    ids=["targetPort", "https", "podTargetLabels", "operator", "relabeling"],
)
def test_a_field_the_translation_does_not_know_fails_loudly(helm: Path, change: Any) -> None:
    [pod_monitor] = [m for m in render_monitors(helm) if m["kind"] == "PodMonitor"]
    changed = copy.deepcopy(pod_monitor)
    change(changed)
    with pytest.raises(NotImplementedError):
        monitor_scrape_configs([changed], SD)


def test_credentials_from_files_or_inline_data(tmp_path: Path) -> None:
    def config(cluster: dict[str, Any], user: dict[str, Any]) -> Path:
        path = tmp_path / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "current-context": "c",
                    "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                    "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1234", **cluster}}],
                    "users": [{"name": "u", "user": user}],
                }
            )
        )
        return path

    files = kubernetes_sd(
        config({"certificate-authority": "pki/ca.crt"}, {"client-certificate": "/x/a.crt"}), tmp_path
    )
    assert files == {
        "api_server": "https://127.0.0.1:1234",
        "tls_config": {"ca_file": str(tmp_path / "pki" / "ca.crt"), "cert_file": "/x/a.crt"},
    }
    encoded = {k: base64.b64encode(k.encode()).decode() for k in ("ca", "crt", "key")}
    inline = kubernetes_sd(
        config(
            {"certificate-authority-data": encoded["ca"]},
            {"client-certificate-data": encoded["crt"], "client-key-data": encoded["key"]},
        ),
        tmp_path,
    )
    written = {k: Path(v).read_text() for k, v in inline["tls_config"].items()}
    assert written == {"ca_file": "ca", "cert_file": "crt", "key_file": "key"}
    assert Path(inline["tls_config"]["key_file"]).stat().st_mode & 0o077 == 0


POLICY: dict[str, Any] = {
    "metadata": {"name": "r1-sandbox", "namespace": "ns"},
    "spec": {
        "podSelector": {"matchLabels": {"tarot.dev/run": "r1", "app.kubernetes.io/component": "sandbox"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"tarot.dev/run": "r1"}}}], "ports": [{"port": 8080}]},
            {
                "from": [
                    {"ipBlock": {"cidr": "10.244.0.0/24", "except": ["10.244.0.128/25"]}},
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                        "podSelector": {
                            "matchExpressions": [{"key": "app", "operator": "In", "values": ["prom"]}]
                        },
                    },
                ],
                "ports": [{"protocol": "TCP", "port": "http"}],
            },
        ],
        "egress": [],
    },
}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}


@pytest.mark.parametrize(
    ("source", "port", "admitted"),
    [
        (Source("10.244.0.1"), 8080, True),  # the node (ipBlock), on the port named http
        (Source("10.244.0.1"), 8081, False),  # another port
        (Source("10.244.0.200"), 8080, False),  # in the except
        (Source("10.9.0.1", "ns", {}, {"tarot.dev/run": "r1"}), 8080, True),  # the run's own pod
        (
            Source("10.9.0.1", "other", {}, {"tarot.dev/run": "r1"}),
            8080,
            False,
        ),  # same label, other namespace
        (Source("10.9.0.2", "ns", {}, {"tarot.dev/run": "r2"}), 8080, False),  # another run
        (Source("10.9.0.3", "monitoring", MONITORING, {"app": "prom"}), 8080, True),
        (Source("10.9.0.3", "monitoring", MONITORING, {"app": "grafana"}), 8080, False),
        (Source("10.9.0.3", "elsewhere", {}, {"app": "prom"}), 8080, False),
    ],
)
def test_policy_admits(source: Source, port: int, admitted: bool) -> None:
    assert policy_admits(POLICY, source, port, "http" if port == 8080 else "health") is admitted


def test_the_last_step_each_phase_logs() -> None:
    phases = [{"steps": 5}, {"steps": 5}, {"steps": 5}, {"steps": 9}]
    run = {"spec": {"training": {}}, "status": {"curriculum": {"phases": phases}}}
    assert expected_last_steps(run) == {0: 5, 1: 10, 2: 15, 3: 24}
    every_4 = {**run, "spec": {"training": {"loggingSteps": 4}}}
    assert expected_last_steps(every_4) == {0: 4, 1: 8, 2: 12, 3: 24}  # a phase logs its last multiple of 4
    every_6 = {**run, "spec": {"training": {"loggingSteps": 6}}}
    assert expected_last_steps(every_6) == {1: 6, 2: 12, 3: 24}  # phase 0 (steps 1-5) logs none
