"""The Helm chart: lint, offline schema validation of what it renders, and the rendered objects themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from chart_tools import (
    CHART,
    KUBE_VERSION,
    REPO,
    crd_schemas,
    helm,
    kubeconform,
    kubernetes_schemas,
    objects,
    render,
    tool_dir,
)
from tarot_operator.config import METRICS_SCRAPERS_ENV, PodScheduling, metrics_scrapers_from_env

# Every optional part switched on, namespace-scoped (the other RBAC shape from the default's).
ALL_OPTIONAL: dict[str, Any] = {
    "watchNamespaces": ["team-a", "team-b"],
    "imagePullSecrets": [{"name": "regcred"}],
    "serviceAccount": {"create": True, "name": "tarot-operator", "annotations": {"example.com/role": "x"}},
    "defaults": {
        "trainerImage": "registry.example/trainer:1",
        "sandboxImage": "registry.example/sandbox:1",
        "vllmServerImage": "registry.example/vllm:1",
    },
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                        ]
                    }
                ]
            }
        }
    },
    "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"example.com/a": "b"},
    "podLabels": {"team": "ml"},
    "metrics": {
        "enabled": True,
        "port": 9090,
        "serviceMonitor": {"enabled": True, "interval": "15s", "additionalLabels": {"release": "kps"}},
        "podMonitor": {"enabled": True, "interval": "10s", "additionalLabels": {"release": "kps"}},
    },
    "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kps"}},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "ML"}},
}
# The local cluster's values (the operator as a pod on the real node, images imported, not pulled).
CLUSTER_VALUES: dict[str, Any] = yaml.safe_load((REPO / "hack" / "cluster-values.yaml").read_text())


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return tool_dir("build-cluster-tools.sh") / "helm"


@pytest.fixture(scope="module")
def chart_tools() -> Path:
    return tool_dir("build-chart-tools.sh")


@pytest.fixture(scope="module")
def crd_schema_dir(chart_tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    crds = sorted((chart_tools / "crds").glob("*.yaml")) + sorted((CHART / "crds").glob("*.yaml"))
    return crd_schemas(crds, tmp_path_factory.mktemp("crd-schemas"))


@pytest.fixture(scope="module")
def kube_schema_dir(
    tmp_path_factory: pytest.TempPathFactory,
    default_objects: list[dict[str, Any]],
    optional_objects: list[dict[str, Any]],
) -> Path:
    return kubernetes_schemas(tmp_path_factory.mktemp("kube-schemas"), default_objects + optional_objects)


@pytest.fixture(scope="module")
def cluster_objects(helm_bin: Path) -> list[dict[str, Any]]:
    return objects(render(helm_bin, CLUSTER_VALUES))


@pytest.fixture(scope="module")
def default_objects(helm_bin: Path) -> list[dict[str, Any]]:
    return objects(render(helm_bin))


@pytest.fixture(scope="module")
def optional_objects(helm_bin: Path) -> list[dict[str, Any]]:
    return objects(render(helm_bin, ALL_OPTIONAL))


def _of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = _of_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


# ---- helm lint and kubeconform -----------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [None, ALL_OPTIONAL, CLUSTER_VALUES], ids=["default", "all-optional", "local-cluster"]
)
def test_helm_lint_strict(helm_bin: Path, values: dict[str, Any] | None, tmp_path: Path) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", "tarot-system"]
    if values:
        (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
        args += ["--values", str(tmp_path / "values.yaml")]
    result = helm(helm_bin, *args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "values", [None, ALL_OPTIONAL, CLUSTER_VALUES], ids=["default", "all-optional", "local-cluster"]
)
def test_rendered_manifests_validate_offline(
    helm_bin: Path,
    chart_tools: Path,
    kube_schema_dir: Path,
    crd_schema_dir: Path,
    values: dict[str, Any] | None,
) -> None:
    manifest = render(helm_bin, values)
    result, report = kubeconform(
        chart_tools / "bin" / "kubeconform", manifest, kube_schema_dir, crd_schema_dir
    )
    assert result.returncode == 0, json.dumps(report["resources"], indent=1)
    summary = report["summary"]
    # Nothing skipped for lack of a schema: every object was checked.
    assert summary["skipped"] == 0 and summary["invalid"] == 0 and summary["errors"] == 0, summary
    assert summary["valid"] == len(objects(manifest))


def test_kubeconform_rejects_a_misspelt_field(
    helm_bin: Path, chart_tools: Path, kube_schema_dir: Path, crd_schema_dir: Path
) -> None:
    """The offline schemas are strict, also for the monitoring.coreos.com kinds made from CRDs."""
    manifest = render(helm_bin, ALL_OPTIONAL).replace("podMetricsEndpoints:", "podMetricEndpoints:")
    result, report = kubeconform(
        chart_tools / "bin" / "kubeconform", manifest, kube_schema_dir, crd_schema_dir
    )
    assert result.returncode != 0
    invalid = [r for r in report["resources"] if r["status"] == "statusInvalid"]
    assert [r["kind"] for r in invalid] == ["PodMonitor"]
    assert "podMetricEndpoints" in invalid[0]["msg"]


# ---- values.schema.json ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"metrics": {"port": 70000}}, "/metrics/port"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "/metrics/serviceMonitor/interval"),
        (
            {"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}},
            "/grafanaDashboard/labels/grafana_dashboard",
        ),
        ({"metrcs": {"enabled": True}}, "metrcs"),
        (
            {"defaults": {"podTolerations": [{"key": "a", "effect": "Sometimes"}]}},
            "/defaults/podTolerations/0",
        ),
        ({"defaults": {"podNodeSelector": {"tarot.dev/node": True}}}, "/defaults/podNodeSelector"),
        # The service account's name is required when the chart does not create it.
        ({"serviceAccount": {"create": False}}, "serviceAccount.name"),
    ],
)
def test_a_wrong_value_fails_naming_it(
    helm_bin: Path, values: dict[str, Any], named: str, tmp_path: Path
) -> None:
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    result = helm(
        helm_bin,
        "template",
        "tarot",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--values",
        str(tmp_path / "values.yaml"),
        check=False,
    )
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


# ---- the operator Deployment ----------------------------------------------------------------------


def test_chart_versions_follow_the_package() -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    assert chart["version"] == version


def test_operator_deployment_is_hardened(default_objects: list[dict[str, Any]]) -> None:
    deployment = _one(default_objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["image"] == "ghcr.io/tarot-dev/tarot-operator:0.1.0"
    assert container["command"] == ["tarot", "operator", "run"]
    assert "--health-port=8081" in container["args"] and "--metrics-port=8080" in container["args"]
    assert not any(arg.startswith("--namespace") for arg in container["args"])  # cluster-wide
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TAROT_TRAINER_IMAGE"] == "ghcr.io/tarot-dev/tarot-trainer:0.1.0"
    assert env["TAROT_SANDBOX_IMAGE"] == "ghcr.io/tarot-dev/tarot-sandbox:0.1.0"
    assert env["TAROT_VLLM_SERVER_IMAGE"] == env["TAROT_TRAINER_IMAGE"]  # trl + vLLM: the trainer's image


def test_optional_values_reach_the_pod(optional_objects: list[dict[str, Any]]) -> None:
    pod_template = _one(optional_objects, "Deployment")["spec"]["template"]
    pod = pod_template["spec"]
    (container,) = pod["containers"]
    assert [a for a in container["args"] if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    assert "--metrics-port=9090" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TAROT_TRAINER_IMAGE"] == "registry.example/trainer:1"
    assert env["TAROT_SANDBOX_IMAGE"] == "registry.example/sandbox:1"
    assert env["TAROT_VLLM_SERVER_IMAGE"] == "registry.example/vllm:1"
    assert pod["serviceAccountName"] == "tarot-operator"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == ALL_OPTIONAL["nodeSelector"]
    assert pod["tolerations"] == ALL_OPTIONAL["tolerations"]
    assert pod["affinity"] == ALL_OPTIONAL["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod_template["metadata"]["labels"]["team"] == "ml"
    assert pod_template["metadata"]["annotations"]["example.com/a"] == "b"


def test_changed_values_roll_the_operator(helm_bin: Path) -> None:
    """The pod template changes (so `helm upgrade` rolls the pod) when the operator's settings change."""

    def template_of(values: dict[str, Any] | None) -> Any:
        return _one(objects(render(helm_bin, values)), "Deployment")["spec"]["template"]

    before = template_of(None)
    after = template_of({"defaults": {"trainerImage": "registry.example/trainer:2"}})
    assert (
        before["metadata"]["annotations"]["checksum/config"]
        != after["metadata"]["annotations"]["checksum/config"]
    )


def test_every_object_carries_the_standard_labels(optional_objects: list[dict[str, Any]]) -> None:
    for obj in optional_objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "tarot", obj["kind"]
        assert labels["app.kubernetes.io/instance"] == "tarot", obj["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", obj["kind"]
        assert labels["app.kubernetes.io/version"] == "0.1.0", obj["kind"]
        assert labels["helm.sh/chart"] == "tarot-0.1.0", obj["kind"]


# ---- RBAC ---------------------------------------------------------------------------------------


def _rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    return list(role["rules"])


def _documented_rules() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of docs/operator.md's table "RBAC: exactly what the operator calls"."""
    text = (REPO / "docs" / "operator.md").read_text()
    section = text.split("## RBAC", 1)[1].split("\n## ", 1)[0]
    granted: set[tuple[str, str, str]] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        groups = ["" if g in ('""', '"" (core)') else g for g in re.findall(r"`([^`]*)`", cells[0])]
        groups = [g.replace('"', "") for g in groups]
        resources = re.findall(r"`([^`]*)`", cells[1])
        verbs = [v.strip() for v in cells[2].split(",")]
        granted |= {(g, r, v) for g in groups for r in resources for v in verbs}
    assert granted, "docs/operator.md has no RBAC table"
    return granted


def _watched_by_kopf() -> set[tuple[str, str, str]]:
    """list and watch of every resource a kopf handler of the operator watches, from its real registry.

    (kopf's own resource observer reads the same registry attributes.)"""
    from tarot_operator.config import OperatorConfig
    from tarot_operator.handlers import build_registry

    registry = build_registry(SimpleNamespace(config=OperatorConfig()))  # type: ignore[arg-type]
    handlers = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._spawning.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    watched = {
        (h.selector.group or "", str(h.selector.plural or h.selector.any_name))
        for h in handlers
        if h.selector
    }
    assert watched, "the operator registers no kopf handler"
    return {(group, resource, verb) for group, resource in watched for verb in ("list", "watch")}


def _operator_calls() -> set[tuple[str, str, str]]:
    return _documented_rules() | _watched_by_kopf()


def _granted(roles: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_has_no_wildcard(
    default_objects: list[dict[str, Any]], optional_objects: list[dict[str, Any]]
) -> None:
    roles = [o for o in default_objects + optional_objects if o["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert not any("*" in item for item in rule[key]), (role["kind"], rule)
            assert "nonResourceURLs" not in rule


def test_cluster_wide_rbac_is_exactly_what_the_operator_calls(
    default_objects: list[dict[str, Any]],
) -> None:
    role = _one(default_objects, "ClusterRole")
    assert _granted([role]) == _operator_calls()
    binding = _one(default_objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tarot", "namespace": "tarot-system"}]
    assert not _of_kind(default_objects, "Role") and not _of_kind(default_objects, "RoleBinding")


def test_namespace_scoped_rbac_grants_nothing_cluster_wide(optional_objects: list[dict[str, Any]]) -> None:
    assert not _of_kind(optional_objects, "ClusterRole")
    assert not _of_kind(optional_objects, "ClusterRoleBinding")
    roles = _of_kind(optional_objects, "Role")
    bindings = _of_kind(optional_objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "tarot",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "tarot-operator", "namespace": "tarot-system"}
        ]
    # The same namespaced rules as the cluster-wide role; only cluster-scoped resources are left out.
    cluster_scoped = {"customresourcedefinitions", "namespaces"}
    documented = {rule for rule in _operator_calls() if rule[1] not in cluster_scoped}
    for role in roles:
        assert _granted([role]) == documented


def test_two_replicas_elect_a_leader_on_the_release_lease(helm_bin: Path) -> None:
    """replicaCount > 1: the leader election Lease named in the pods' environment, and a Role granting only
    that Lease's kind in the release's namespace; standbys are Ready, so a rolling update may surge."""
    objs = objects(render(helm_bin, {"replicaCount": 2, "leaderElection": {"leaseSeconds": 10}}))
    deployment = _one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TAROT_OPERATOR_LEADER_ELECTION_LEASE"]["value"] == "tarot-system/tarot"
    assert env["TAROT_OPERATOR_LEADER_ELECTION_LEASE_SECONDS"]["value"] == "10"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    role = next(r for r in _of_kind(objs, "Role") if r["metadata"]["name"] == "tarot-leader-election")
    assert role["metadata"]["namespace"] == "tarot-system"
    assert _granted([role]) == {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
    [binding] = [b for b in _of_kind(objs, "RoleBinding") if b["metadata"]["name"] == "tarot-leader-election"]
    assert binding["roleRef"]["name"] == "tarot-leader-election"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tarot", "namespace": "tarot-system"}]
    # The operator's own rules are unchanged by the replica count.
    assert _granted([_one(objs, "ClusterRole")]) == _operator_calls()


def test_one_replica_runs_alone(default_objects: list[dict[str, Any]]) -> None:
    (container,) = _one(default_objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not any(e["name"].startswith("TAROT_OPERATOR_LEADER_ELECTION") for e in container["env"])
    assert not _of_kind(default_objects, "Role")


def test_rbac_create_false_renders_no_rbac(helm_bin: Path) -> None:
    objs = objects(render(helm_bin, {"rbac": {"create": False}}))
    assert not {o["kind"] for o in objs} & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# ---- CRD, monitoring objects ------------------------------------------------------------------------


def test_chart_crd_is_the_generated_crd() -> None:
    top = REPO / "crds" / "tarot.dev_tarotruns.yaml"
    ours = CHART / "crds" / "tarot.dev_tarotruns.yaml"
    assert top.is_file(), "crds/tarot.dev_tarotruns.yaml (generated by `tarot crd`) is missing"
    assert ours.read_bytes() == top.read_bytes(), (
        "charts/tarot/crds/ differs from crds/: cp crds/*.yaml charts/tarot/crds/"
    )


def test_monitoring_objects_select_the_operator(optional_objects: list[dict[str, Any]]) -> None:
    service = _one(optional_objects, "Service")
    monitor = _one(optional_objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    pod_labels = _one(optional_objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pod_monitor = _one(optional_objects, "PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_prometheus_rule_is_the_tested_rule_file(optional_objects: list[dict[str, Any]]) -> None:
    rule = _one(optional_objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())


def test_dashboard_config_map_is_found_by_the_grafana_sidecar(
    default_objects: list[dict[str, Any]], optional_objects: list[dict[str, Any]]
) -> None:
    assert not _of_kind(default_objects, "ConfigMap")
    config_map = _one(optional_objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "ML"}
    assert json.loads(config_map["data"]["tarot.json"]) == json.loads(
        (CHART / "files" / "dashboard.json").read_text()
    )


def test_readme_lists_every_value() -> None:
    """charts/tarot/README.md's table names every leaf of values.yaml (maps of free keys count as one)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()

    def leaves(node: Any, node_schema: dict[str, Any], prefix: str) -> list[str]:
        props = node_schema.get("properties")
        if isinstance(node, dict) and props:
            return [k for key, value in node.items() for k in leaves(value, props[key], f"{prefix}{key}.")]
        return [prefix.rstrip(".")]

    missing = [key for key in leaves(values, schema, "") if f"| `{key}` |" not in readme]
    assert not missing, f"not in charts/tarot/README.md: {missing}"


def test_local_cluster_values_run_the_operator_on_the_real_node_from_imported_images(
    cluster_objects: list[dict[str, Any]],
) -> None:
    pod = _one(cluster_objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "localhost/tarot/tarot-operator:0.1.0"
    assert container["imagePullPolicy"] == "Never"
    assert pod["nodeSelector"] == CLUSTER_VALUES["nodeSelector"]
    assert pod["tolerations"] == CLUSTER_VALUES["tolerations"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    defaults = CLUSTER_VALUES["defaults"]
    assert env["TAROT_TRAINER_IMAGE"] == defaults["trainerImage"]
    assert env["TAROT_SANDBOX_IMAGE"] == defaults["sandboxImage"]
    # The operator reads back exactly the scheduling the values give every pod of every run.
    scheduling = PodScheduling.from_env(env)
    assert scheduling.node_selector == defaults["podNodeSelector"]
    assert list(scheduling.tolerations) == defaults["podTolerations"]


def test_no_run_scheduling_by_default(default_objects: list[dict[str, Any]]) -> None:
    (container,) = _one(default_objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    names = {e["name"] for e in container["env"]}
    assert not names & {"TAROT_OPERATOR_POD_NODE_SELECTOR", "TAROT_OPERATOR_POD_TOLERATIONS"}


# ---- who may scrape the runs' sandboxes ---------------------------------------------------------------


def test_metrics_scrapers_reach_the_operator(
    helm_bin: Path, default_objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    """`metrics.scrapers` (NetworkPolicy peers) arrive as the operator reads them; none by default."""
    scrapers = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
        {"ipBlock": {"cidr": "10.244.0.1/32"}},
    ]
    (container,) = _one(objects(render(helm_bin, {"metrics": {"scrapers": scrapers}})), "Deployment")["spec"][
        "template"
    ]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert metrics_scrapers_from_env(env) == tuple(scrapers)
    (default,) = _one(default_objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert METRICS_SCRAPERS_ENV not in {e["name"] for e in default["env"]}

    (tmp_path / "values.yaml").write_text(yaml.safe_dump({"metrics": {"scrapers": [{"podSelektor": {}}]}}))
    result = helm(
        helm_bin, "template", "tarot", str(CHART), "--values", str(tmp_path / "values.yaml"), check=False
    )
    assert result.returncode != 0 and "/metrics/scrapers/0" in result.stderr, result.stderr
