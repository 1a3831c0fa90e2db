"""What the operator gives Prometheus: the train pods' metrics port, the scrapers its sandbox admits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from operator_helpers import RUN
from tarot_operator.config import METRICS_SCRAPERS_ENV, OperatorConfig, metrics_scrapers_from_env
from tarot_operator.jobs import TRAIN_METRICS_PORT, JobSettings, stage_job
from tarot_operator.sandbox import SANDBOX_PORT, sandbox_deployment, sandbox_network_policy

from tarot_jobs.lifecycle.types import ChildKind, ChildRef
from tarot_jobs.spec.model import TarotRunSpec

SETTINGS = JobSettings(image="img:1", model_cache="/workspace/models", suspend=False, phases=4)
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
NODE = {"ipBlock": {"cidr": "10.244.0.1/32"}}


def _spec(**resources: Any) -> TarotRunSpec:
    return TarotRunSpec.model_validate({"resources": resources})


def _container(ref: ChildRef, **resources: Any) -> dict[str, Any]:
    [container] = stage_job(RUN, ref, _spec(**resources), SETTINGS)["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("resources", [{}, {"nodes": 2, "gpus": 8}], ids=["one-process", "torchrun"])
def test_train_pods_serve_metrics_on_a_port_named_metrics(resources: dict[str, Any]) -> None:
    container = _container(ChildRef(ChildKind.TRAIN, 1), **resources)
    command = container["command"]
    assert command[command.index("--metrics-port") + 1] == str(TRAIN_METRICS_PORT)
    # The chart's PodMonitor scrapes container ports named "metrics" (trainer) and "http" (sandbox).
    assert container["ports"] == [{"name": "metrics", "containerPort": TRAIN_METRICS_PORT, "protocol": "TCP"}]
    assert TRAIN_METRICS_PORT not in (SANDBOX_PORT, 29400)  # nor the rendezvous port


@pytest.mark.parametrize(
    "kind", [ChildKind.DATA, ChildKind.PROBE, ChildKind.EVALUATE_BEFORE, ChildKind.EVALUATE_AFTER]
)
def test_other_stages_serve_no_metrics(kind: ChildKind) -> None:
    container = _container(ChildRef(kind))
    assert "--metrics-port" not in container["command"] and "ports" not in container


def test_scrapers_from_the_environment() -> None:
    env = {METRICS_SCRAPERS_ENV: f"[{json.dumps(PROMETHEUS)}, {json.dumps(NODE)}]"}
    assert metrics_scrapers_from_env(env) == (PROMETHEUS, NODE)
    assert metrics_scrapers_from_env({}) == ()
    assert OperatorConfig().metrics_scrapers == metrics_scrapers_from_env()
    expressions = {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["p"]}]}}
    assert metrics_scrapers_from_env({METRICS_SCRAPERS_ENV: f"[{json.dumps(expressions)}]"}) == (expressions,)


@pytest.mark.parametrize(
    "value",
    [
        '{"podSelector": {}}',  # not a list
        '[{"podSelektor": {}}]',  # a misspelt key
        '[{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]',  # Kubernetes refuses both in one peer
        "[{}]",  # a peer that names nobody
        '[{"ipBlock": {"cidr": "10.0.0.300/32"}}]',
        '[{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}]',
        "[{",
    ],
)
def test_bad_scrapers_name_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=f"^{METRICS_SCRAPERS_ENV}: not a JSON list of NetworkPolicy peers"):
        metrics_scrapers_from_env({METRICS_SCRAPERS_ENV: value})


def test_the_sandbox_policy_admits_the_scrapers_to_its_port_and_nothing_else() -> None:
    plain = sandbox_network_policy(RUN, "r1-sandbox")["spec"]
    run_pods = {"from": [{"podSelector": {"matchLabels": {"tarot.dev/run": "r1"}}}], "ports": [_port()]}
    assert plain["ingress"] == [run_pods]
    spec = sandbox_network_policy(RUN, "r1-sandbox", (PROMETHEUS, NODE))["spec"]
    assert spec["ingress"] == [run_pods, {"from": [PROMETHEUS, NODE], "ports": [_port()]}]
    assert spec["egress"] == [] and spec["policyTypes"] == ["Ingress", "Egress"]  # still no egress
    # The sandbox serves /metrics on that port, and its pods declare it by the name the PodMonitor scrapes.
    [container] = sandbox_deployment(RUN, "r1-sandbox", _spec(), "sbx:1", 1, {})["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["ports"] == [{"name": "http", "containerPort": SANDBOX_PORT, "protocol": "TCP"}]


def test_no_policy_of_the_run_selects_its_train_pods() -> None:
    """So nothing needs admitting to the trainer's metrics port: the sandbox policy is the run's only one,
    and its podSelector does not match a train pod's labels."""
    selector = sandbox_network_policy(RUN, "r1-sandbox")["spec"]["podSelector"]["matchLabels"]
    job = stage_job(RUN, ChildRef(ChildKind.TRAIN, 0), _spec(), SETTINGS)
    train_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= train_labels.items()
    assert train_labels["tarot.dev/run"] == "r1"  # what the PodMonitor selects


def _port() -> dict[str, Any]:
    return {"protocol": "TCP", "port": SANDBOX_PORT}
