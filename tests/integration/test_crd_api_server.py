"""The TarotRun CRD on the real API server (hack/ control plane): it rejects every bad spec of the
shared corpus naming the field, as `tarot validate` does; it accepts the example runs and fills in
the same defaults as the spec model; fields are immutable once the run has started, except the
operational ones (suspend); the status subresource keeps everything; `kubectl get tr` shows the
printer columns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_cluster import Cluster
from spec_corpus import REPO, bad_specs, example_runs, full_status, tarotrun

from tarot_jobs.spec.crd import CRD_NAME
from tarot_jobs.spec.model import parse_document

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> Cluster:
    # As the README installs it (`kubectl apply -f crds/`).
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    return cluster


def _create(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(manifest), check=False
    )


def _patch(cluster: Cluster, namespace: str, name: str, patch: dict[str, Any], *extra: str) -> Any:
    return cluster.kubectl(
        "patch",
        "-n",
        namespace,
        "tarotrun",
        name,
        "--type=merge",
        "-p",
        json.dumps(patch),
        *extra,
        check=False,
    )


def _cel_messages(schema: dict[str, Any]) -> list[str]:
    found = [rule["message"] for rule in schema.get("x-kubernetes-validations", [])]
    for prop in schema.get("properties", {}).values():
        found += _cel_messages(prop)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _cel_messages(schema[key])
    return found


def test_the_api_server_rejects_every_bad_spec_naming_the_field(crd: Cluster, namespace: str) -> None:
    problems, answers = [], []
    for bad in bad_specs():
        result = _create(crd, namespace, bad.manifest)
        if result.returncode == 0:
            problems.append(f"{bad.case}: accepted")
            _patch(crd, namespace, bad.manifest["metadata"]["name"], {})  # keep going; named in the failure
            crd.kubectl("delete", "-n", namespace, "tarotrun", bad.manifest["metadata"]["name"], check=False)
            continue
        answers.append(result.stderr)
        if bad.field not in result.stderr:
            problems.append(f"{bad.case}: the answer does not name {bad.field}: {result.stderr.strip()}")
    assert not problems, "\n".join(problems)

    # The corpus exercises every CEL rule of the spec and the name rules (the immutability rules are
    # the next test's): a rule whose message never came back has no bad spec and no proof.
    root = json.loads(crd.kubectl("get", f"crd/{CRD_NAME}", "-o", "json").stdout)["spec"]["versions"][0]
    schema = root["schema"]["openAPIV3Schema"]
    messages = _cel_messages(schema["properties"]["spec"]) + [
        rule["message"] for rule in schema["x-kubernetes-validations"] if "oldSelf" not in rule["rule"]
    ]
    everything = "\n".join(answers)
    unproven = [message for message in messages if message not in everything]
    assert not unproven, f"CEL rules no bad spec triggers: {unproven}"


@pytest.mark.parametrize("example", sorted(example_runs()))
def test_the_example_runs_are_accepted_with_the_models_defaults(
    crd: Cluster, namespace: str, example: str
) -> None:
    run = example_runs()[example]
    result = _create(crd, namespace, run)
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["spec"]
    # The API server fills in the same defaults as `tarot validate --show`, and what it stores
    # is still a valid spec for tarot.
    assert stored == parse_document(run).model_dump(mode="json", exclude_none=True)["spec"]
    assert parse_document({**run, "spec": stored}) == parse_document(run)


def test_fields_are_immutable_once_the_run_has_started_but_suspend_is_not(
    crd: Cluster, namespace: str
) -> None:
    assert _create(crd, namespace, tarotrun({}, "imm")).returncode == 0

    # Pending (no status yet, then an explicit Pending): everything may still change.
    assert _patch(crd, namespace, "imm", {"spec": {"model": {"name": "tiny-2"}}}).returncode == 0
    assert (
        _patch(crd, namespace, "imm", {"status": {"phase": "Pending"}}, "--subresource=status").returncode
        == 0
    )
    assert _patch(crd, namespace, "imm", {"spec": {"training": {"learningRate": 2e-6}}}).returncode == 0

    started = _patch(crd, namespace, "imm", {"status": {"phase": "Training"}}, "--subresource=status")
    assert started.returncode == 0, started.stderr
    refused = {
        "spec.model": {"model": {"name": "tiny-3"}},
        "spec.dataset": {"dataset": {"seed": 1}},
        "spec.tiers": {"tiers": ["basic", "intermediate", "complex"]},
        "spec.curriculum": {"curriculum": {"policy": "forward"}},
        "spec.reward": {"reward": {"formatWeight": 0.5}},
        "spec.training": {"training": {"learningRate": 3e-6}},
        "spec.evaluation": {"evaluation": {"maxNewTokens": 64}},
        "spec.resources": {"resources": {"gpus": 1}},
        "spec.storage": {"storage": {"size": "1Gi"}},
        "spec.sandbox": {"sandbox": {"timeLimitSeconds": 9}},
    }
    for field, change in refused.items():
        result = _patch(crd, namespace, "imm", {"spec": change})
        assert result.returncode != 0, f"{field} changed on a started run"
        assert f"{field}:" in result.stderr and "cannot change once the run has started" in result.stderr

    allowed = {
        "suspend": True,
        "training": {"maxRetries": 5},
        "sandbox": {"replicas": 2},
        "resources": {"cpu": "4", "kueueQueue": "gpu", "kueuePriorityClass": "high"},
        "storage": {"retainOnDelete": True},
        "images": {"trainer": "registry.local:5000/tarot/trainer:fix-1"},
    }
    result = _patch(crd, namespace, "imm", {"spec": allowed})
    assert result.returncode == 0, result.stderr
    assert _patch(crd, namespace, "imm", {"spec": {"suspend": False}}).returncode == 0

    stored = json.loads(crd.kubectl("get", "-n", namespace, "tarotrun", "imm", "-o", "json").stdout)
    assert stored["spec"]["model"]["name"] == "tiny-2" and stored["spec"]["training"]["learningRate"] == 2e-6
    assert stored["spec"]["suspend"] is False and stored["spec"]["training"]["maxRetries"] == 5
    assert stored["spec"]["storage"]["retainOnDelete"] is True


def test_the_status_subresource_keeps_every_field_and_kubectl_shows_the_columns(
    crd: Cluster, namespace: str
) -> None:
    assert _create(crd, namespace, tarotrun({}, "cols")).returncode == 0
    status = full_status()
    result = _patch(crd, namespace, "cols", {"status": status}, "--subresource=status")
    assert result.returncode == 0, result.stderr
    stored = json.loads(crd.kubectl("get", "-n", namespace, "tarotrun", "cols", "-o", "json").stdout)
    assert stored["status"] == status  # nothing pruned

    # The main resource ignores status: only the subresource writes it.
    assert _patch(crd, namespace, "cols", {"status": {"phase": "Failed"}}).returncode == 0
    stored = json.loads(crd.kubectl("get", "-n", namespace, "tr", "cols", "-o", "json").stdout)
    assert stored["status"]["phase"] == "Training"

    header, row = crd.kubectl("get", "-n", namespace, "tr", "cols").stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "POLICY", "CAPABILITY", "PROGRESS", "REWARD", "ETA", "AGE"]
    assert row.split()[:8] == ["cols", "Training", "forward", "0.3", "2/4", "29%", "0.5", "1m"]
    listed = crd.kubectl("get", "-n", namespace, "tarot", "-o", "name").stdout.split()
    assert "tarotrun.tarot.dev/cols" in listed  # the category
