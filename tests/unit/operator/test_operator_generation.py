"""The run's vLLM server (training.generation vllm-server): the objects the operator renders, the URL the
train Jobs read, and when the reconciler starts and stops it. No GPU or vLLM here: the objects are
checked as data (and against the API server in tests/integration/test_generation_server_objects.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
import yaml
from operator_helpers import RUN
from tarot_operator.config import OperatorConfig, PodScheduling
from tarot_operator.generation import (
    generation_server_deployment,
    generation_server_service,
    vllm_serve_command,
)
from tarot_operator.kube import ApiError, Kube
from tarot_operator.reconcile import Reconciler, RunMemory
from tarot_operator.run_spec import spec_yaml

from tarot_jobs.lifecycle import planner
from tarot_jobs.lifecycle.types import ChildKind, ChildRef, ChildState, ObservedChild, Plan
from tarot_jobs.spec.model import TarotRunSpec, VllmServerSpec

MODEL = {"name": "Qwen/Qwen2.5-Coder-1.5B-Instruct", "revision": "main", "dtype": "bfloat16"}
SERVER_PATH = "/apis/apps/v1/namespaces/ns/deployments/r1-generation-server"


def served(**server: Any) -> TarotRunSpec:
    return TarotRunSpec.model_validate(
        {
            "model": MODEL,
            "training": {
                "maxSteps": 4,
                "numGenerations": 4,
                "generation": "vllm-server",
                "vllmServer": server,
            },
            "resources": {
                "gpus": 1,
                "cpu": "8",
                "memory": "64Gi",
                "nodeSelector": {"gpu": "h100"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        }
    )


def server_of(spec: TarotRunSpec) -> VllmServerSpec:
    server = spec.training.generation_server()
    assert server is not None
    return server


def test_the_deployment_serves_the_train_jobs_model_on_its_own_gpus() -> None:
    spec = served(gpus=2)
    scheduling = PodScheduling({"pool": "tarot"}, ({"key": "tarot", "operator": "Exists"},))
    deployment = generation_server_deployment(
        RUN, "r1-generation-server", spec, server_of(spec), "trainer:1-vllm", {"team": "ml"}, scheduling
    )
    meta = deployment["metadata"]
    assert meta["name"] == "r1-generation-server" and meta["namespace"] == "ns"
    assert meta["labels"]["app.kubernetes.io/component"] == "generation-server"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "tarot-operator"
    assert meta["labels"]["tarot.dev/run"] == "r1"
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("TarotRun", "u-1", True)
    spec_ = deployment["spec"]
    assert spec_["replicas"] == 1 and spec_["strategy"] == {"type": "Recreate"}
    template_labels = spec_["template"]["metadata"]["labels"]
    assert spec_["selector"]["matchLabels"].items() <= template_labels.items()
    assert template_labels["team"] == "ml"  # the operator's --pod-label
    pod = spec_["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "trainer:1-vllm"
    assert container["command"] == [
        "trl", "vllm-serve", "--model", "Qwen/Qwen2.5-Coder-1.5B-Instruct", "--port", "8000",
        "--revision", "main", "--dtype", "bfloat16", "--tensor-parallel-size", "2",
    ]  # fmt: skip
    amounts = {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert container["resources"] == {"requests": amounts, "limits": amounts}
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "livenessProbe" not in container  # a model load of minutes must not be restarted
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    # Placed like the run's Jobs: the operator's scheduling, then the run's own.
    assert pod["nodeSelector"] == {"pool": "tarot", "gpu": "h100"}
    assert [t["key"] for t in pod["tolerations"]] == ["tarot", "nvidia.com/gpu"]


def test_the_service_selects_the_server_pods() -> None:
    spec = served(port=8001)
    deployment = generation_server_deployment(RUN, "r1-generation-server", spec, server_of(spec), "i", {})
    service = generation_server_service(RUN, "r1-generation-server", server_of(spec))
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8001, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["metadata"]["ownerReferences"] == deployment["metadata"]["ownerReferences"]


@pytest.mark.parametrize(
    ("model", "server", "expected"),
    [
        ({"name": "org/m"}, {}, ["--model", "org/m", "--port", "8000"]),
        (
            {"name": "org/m", "trustRemoteCode": True, "dtype": "float16"},
            {"gpus": 4, "tensorParallelSize": 2, "port": 9000},
            ["--model", "org/m", "--port", "9000", "--dtype", "float16", "--trust-remote-code", "true",
             "--tensor-parallel-size", "2"],
        ),
    ],
)  # fmt: skip
def test_trl_parses_the_vllm_serve_command(
    model: dict[str, Any], server: dict[str, Any], expected: list[str]
) -> None:
    from trl.scripts.vllm_serve import make_parser

    spec = TarotRunSpec.model_validate(
        {"model": model, "training": {"generation": "vllm-server", "vllmServer": server}}
    )
    command = vllm_serve_command(spec, server_of(spec))
    assert command == ["trl", "vllm-serve", *expected]
    (parsed,) = make_parser().parse_args_and_config(command[2:])
    assert parsed.model == "org/m" and parsed.port == server.get("port", 8000)
    assert parsed.tensor_parallel_size == server.get("tensorParallelSize", 1)
    assert parsed.trust_remote_code is bool(model.get("trustRemoteCode"))


def test_the_train_jobs_read_the_servers_url() -> None:
    url = "http://r1-generation-server.ns.svc:8000"
    text = spec_yaml(served(), None, url)
    assert yaml.safe_load(text)["training"]["vllmServer"]["url"] == url
    assert TarotRunSpec.model_validate(yaml.safe_load(text)).training.vllm_server is not None
    # A server the user named stays; other generation modes get none.
    external = served(url="http://vllm.gpu.svc:8000")
    assert yaml.safe_load(spec_yaml(external, None, url))["training"]["vllmServer"]["url"] == (
        "http://vllm.gpu.svc:8000"
    )
    colocated = TarotRunSpec.model_validate({"training": {"generation": "vllm-colocate"}})
    assert "vllmServer" not in yaml.safe_load(spec_yaml(colocated, None, url))["training"]


# ---- when the reconciler starts and stops the server ------------------------------------------------


class RecordingKube:
    """The two calls the reconciler makes; `existing` objects answer a create with 409."""

    def __init__(self, existing: set[str] | None = None) -> None:
        self.existing = set(existing or ())
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        where = f"{path}/{body['metadata']['name']}"
        self.calls.append(("create", where, body))
        if where in self.existing:
            raise ApiError(409, "AlreadyExists")
        self.existing.add(where)
        return body

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", path, body))
        return {}

    def server_calls(self) -> list[tuple[str, Any]]:
        return [
            (verb, body.get("spec", {}).get("replicas"))
            for verb, path, body in self.calls
            if path == SERVER_PATH
        ]


NOW = datetime(2026, 12, 1, tzinfo=UTC)
DATA, PROBE = ChildRef(ChildKind.DATA), ChildRef(ChildKind.PROBE)
RESULTS = {
    DATA: {"train": 20, "heldout": 5, "dropped": 0},
    PROBE: {"score": 0.2, "passAtOne": {"basic": 0.5, "overall": 0.2}},
}


def training_plan(spec: TarotRunSpec) -> Plan:
    """The plan that starts phase 1 (data and probe done)."""
    observed = {
        ref: ObservedChild(ref, ChildState.RUNNING)
        for ref in (ChildRef(ChildKind.WORKSPACE), ChildRef(ChildKind.SANDBOX))
    }
    observed |= {ref: ObservedChild(ref, ChildState.SUCCEEDED, result=r) for ref, r in RESULTS.items()}
    return planner.plan(spec, {}, observed, NOW)


async def apply(kube: RecordingKube, memory: RunMemory, spec: TarotRunSpec, plan: Plan) -> None:
    reconciler = Reconciler(cast(Kube, kube), OperatorConfig(vllm_server_image="vllm:1"))
    await reconciler.apply_children(RUN, spec, plan, memory, {}, None)


async def test_the_server_starts_before_the_first_phase_job_and_stops_after_training() -> None:
    spec, kube, memory = served(), RecordingKube(), RunMemory()
    plan = training_plan(spec)
    assert ChildRef(ChildKind.GENERATION_SERVER) in plan.children
    await apply(kube, memory, spec, plan)
    created = [where.rsplit("/", 2)[-2:] for verb, where, _ in kube.calls if verb == "create"]
    order = [f"{plural}/{name}" for plural, name in created]
    assert order.index("deployments/r1-generation-server") < order.index("jobs/r1-train-0")
    assert "services/r1-generation-server" in order
    [config] = [body for _, where, body in kube.calls if where.endswith("/configmaps/r1-config")]
    jobs_spec = yaml.safe_load(config["data"]["spec.yaml"])
    assert jobs_spec["training"]["vllmServer"]["url"] == "http://r1-generation-server.ns.svc:8000"
    [deployment] = [body for _, where, body in kube.calls if where == SERVER_PATH]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm:1"

    # A plan without the server (training over, the run ended or suspended): scaled to 0, once.
    done = Plan(children=[ChildRef(ChildKind.WORKSPACE)], status=plan.status)
    await apply(kube, memory, spec, done)
    await apply(kube, memory, spec, done)
    assert kube.server_calls() == [("create", 1), ("patch", 0)]

    # Listed again (resumed): the kept Deployment is scaled back to one replica.
    await apply(kube, memory, spec, plan)
    assert kube.server_calls()[-2:] == [("create", 1), ("patch", 1)]


async def test_a_restarted_operator_stops_a_server_it_has_not_seen_once_training_started() -> None:
    spec, kube = served(), RecordingKube()
    status = training_plan(spec).status
    after_training = Plan(children=[ChildRef(ChildKind.WORKSPACE)], status=status)
    memory = RunMemory()  # a new process: no index watches the server
    await apply(kube, memory, spec, after_training)
    await apply(kube, memory, spec, after_training)
    assert kube.server_calls() == [("patch", 0)]
    # Before training nothing was started, so nothing is stopped.
    kube = RecordingKube()
    await apply(kube, RunMemory(), spec, Plan(children=[ChildRef(ChildKind.WORKSPACE)], status={}))
    assert kube.server_calls() == []


@pytest.mark.parametrize(
    "training",
    [
        {"generation": "transformers"},
        {"generation": "vllm-colocate"},
        {"generation": "vllm-server", "vllmServer": {"url": "http://vllm:8000"}},
    ],
)
async def test_no_server_without_vllm_server_generation(training: dict[str, Any]) -> None:
    spec = TarotRunSpec.model_validate(
        {"model": {"name": "org/m"}, "training": {"maxSteps": 4, "numGenerations": 4, **training}}
    )
    kube = RecordingKube()
    plan = training_plan(spec)
    await apply(kube, RunMemory(), spec, plan)
    await apply(kube, RunMemory(), spec, Plan(children=[ChildRef(ChildKind.WORKSPACE)], status=plan.status))
    assert not [where for _, where, _ in kube.calls if "generation-server" in where]
