"""The operator's pure parts: object builders, observation of Jobs, status patches, progress reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from operator_helpers import RUN
from tarot_operator.config import (
    NODE_SELECTOR_ENV,
    SANDBOX_RUNTIME_CLASS_ENV,
    SANDBOX_SECCOMP_ENV,
    TOLERATIONS_ENV,
    OperatorConfig,
    PodScheduling,
    SandboxConfinement,
)
from tarot_operator.jobs import JobSettings, rendezvous_service, stage_job
from tarot_operator.names import parse_child
from tarot_operator.observe import (
    JobSummary,
    PodSummary,
    observe_job,
    summarize_job,
    summarize_pod,
)
from tarot_operator.patching import merge_patch
from tarot_operator.run_spec import spec_yaml
from tarot_operator.sandbox import sandbox_deployment
from tarot_operator.workspace import workspace_claim

from tarot_jobs.lifecycle.progress_report import ProgressReporter, live_progress
from tarot_jobs.lifecycle.types import ChildKind, ChildRef, ChildState
from tarot_jobs.spec.model import TarotRunSpec

TRAIN0 = ChildRef(ChildKind.TRAIN, 0)


def settings(**overrides: Any) -> JobSettings:
    values: dict[str, Any] = {
        "image": "img:1",
        "model_cache": "/workspace/models",
        "suspend": False,
        "phases": 4,
    }
    return JobSettings(**{**values, **overrides})


def spec(**resources: Any) -> TarotRunSpec:
    return TarotRunSpec.model_validate({"resources": resources, "training": {"maxRetries": 5}})


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("ref", [ChildRef(k) for k in ChildKind if k is not ChildKind.TRAIN] + [TRAIN0])
def test_child_suffixes_parse_back(ref: ChildRef) -> None:
    assert parse_child(ref.suffix()) == ref


def test_parse_child_rejects_foreign_labels() -> None:
    assert parse_child("train-x") is None and parse_child("") is None and parse_child("sandbox-1") is None


def test_single_node_train_job() -> None:
    job = stage_job(RUN, TRAIN0, spec(), settings())
    assert job["metadata"]["name"] == "r1-train-0"
    assert job["metadata"]["ownerReferences"][0]["controller"] is True
    assert job["spec"]["backoffLimit"] == 5
    assert "completionMode" not in job["spec"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "r1-progress"
    [container] = pod["containers"]
    assert container["command"][:4] == ["tarot", "train", "/etc/tarot/spec.yaml", "--phase"]
    assert "--resume" in container["command"] and "/etc/tarot/policy.json" in container["command"]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    env = env_of(job)
    assert env["TAROT_RESULT_FILE"] == "/dev/termination-log" and env["TAROT_RUN_NAME"] == "r1"
    assert "PET_NNODES" not in env  # one process: no torchrun
    # The pod waits for policy.json (a listed key) instead of starting without the selected policy.
    [config] = [v for v in pod["volumes"] if v["name"] == "config"]
    assert [item["key"] for item in config["configMap"]["items"]] == ["spec.yaml", "policy.json"]


def test_multi_node_train_job_is_indexed_with_the_rendezvous_environment() -> None:
    job = stage_job(RUN, ChildRef(ChildKind.TRAIN, 2), spec(nodes=3, gpus=8), settings())
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == (
        "Indexed",
        3,
        3,
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == "r1-train-2"
    assert pod["containers"][0]["command"][:3] == ["torchrun", "--no-python", "tarot"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    env = env_of(job)
    assert env["PET_NNODES"] == "3" and env["PET_NPROC_PER_NODE"] == "8"
    assert env["PET_MASTER_ADDR"] == "r1-train-2-0.r1-train-2" and env["PET_MASTER_PORT"] == "29400"
    assert env["PET_NODE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    service = rendezvous_service(RUN, ChildRef(ChildKind.TRAIN, 2))
    assert service["spec"]["clusterIP"] == "None" and service["metadata"]["name"] == "r1-train-2"


def test_kueue_labels_on_the_job_not_the_pods() -> None:
    job = stage_job(
        RUN, ChildRef(ChildKind.PROBE), spec(kueueQueue="q", kueuePriorityClass="hi"), settings(suspend=True)
    )
    labels = job["metadata"]["labels"]
    assert (labels["kueue.x-k8s.io/queue-name"], labels["kueue.x-k8s.io/priority-class"]) == ("q", "hi")
    assert job["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]  # only train Jobs report progress


def test_evaluate_after_reads_the_last_phase_weights() -> None:
    job = stage_job(RUN, ChildRef(ChildKind.EVALUATE_AFTER), spec(), settings(phases=3))
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--model") + 1] == "/workspace/train/phase-2/final"


@pytest.mark.parametrize("ref", [ChildRef(ChildKind.DATA), TRAIN0, ChildRef(ChildKind.EVALUATE_AFTER)])
def test_stage_pods_can_write_the_workspace_as_the_images_non_root_user(ref: ChildRef) -> None:
    # A new volume's root belongs to root; the images run as uid 65532 (images/*/Containerfile).
    pod = stage_job(RUN, ref, spec(), settings())["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == 65532
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"  # no recursive chown each pod
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_data_job_asks_no_gpu_and_pod_labels_are_added() -> None:
    job = stage_job(RUN, ChildRef(ChildKind.DATA), spec(gpus=4), settings(pod_labels={"x": "y"}))
    pod = job["spec"]["template"]
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"]["limits"]
    assert pod["metadata"]["labels"]["x"] == "y" and pod["metadata"]["labels"]["tarot.dev/child"] == "data"


def test_multi_node_workspace_is_shared() -> None:
    assert workspace_claim(RUN, "w", spec(nodes=2))["spec"]["accessModes"] == ["ReadWriteMany"]
    assert workspace_claim(RUN, "w", spec())["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_jobs_get_the_sandbox_service_url_unless_the_spec_names_one() -> None:
    assert "url: http://r1-sandbox.ns.svc:8080" in spec_yaml(spec(), "http://r1-sandbox.ns.svc:8080")
    named = TarotRunSpec.model_validate({"sandbox": {"url": "http://elsewhere:1"}})
    assert "http://elsewhere:1" in spec_yaml(named, "http://r1-sandbox.ns.svc:8080")
    assert "url:" not in spec_yaml(spec(), None)


def _job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "r1-train-0", "labels": {"tarot.dev/child": "train-0"}},
        "spec": {"suspend": status.pop("suspend", False)},
        "status": status,
    }


def _pod(phase: str, message: str = "", exit_code: int | None = None, created: str = "1") -> PodSummary:
    pod = {
        "metadata": {
            "name": f"p{created}",
            "labels": {"job-name": "r1-train-0"},
            "creationTimestamp": created,
        },
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "main", "state": {"terminated": {"message": message, "exitCode": exit_code}}}
            ],
        },
    }
    summary = summarize_pod(pod)
    assert summary is not None
    return summary


def _summary(job: dict[str, Any]) -> JobSummary:
    summary = summarize_job(job)
    assert summary is not None
    return summary


def test_a_complete_job_gives_its_pods_result() -> None:
    job = _summary(_job(conditions=[{"type": "Complete", "status": "True"}], succeeded=1, failed=1))
    pods = [_pod("Failed", "boom", 137, "1"), _pod("Succeeded", '{"phase": 0, "steps": 2}', 0, "2")]
    seen = observe_job(job, pods, None)
    assert (seen.state, seen.result, seen.retries) == (ChildState.SUCCEEDED, {"phase": 0, "steps": 2}, 1)


def test_a_complete_job_whose_pod_is_not_seen_yet_is_still_running() -> None:
    job = _summary(_job(conditions=[{"type": "Complete", "status": "True"}]))
    assert observe_job(job, [], None).state is ChildState.RUNNING


def test_a_bad_input_exit_is_reported_as_bad_input_with_the_message() -> None:
    job = _summary(_job(conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]))
    seen = observe_job(job, [_pod("Failed", "error: dataset.source: no such file", 2)], None)
    assert seen.state is ChildState.FAILED
    assert seen.failure == "BadInput: error: dataset.source: no such file (exit code 2)"


def test_retries_used_up_name_the_reason_and_the_last_pod() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "too many"}
    job = _summary(_job(conditions=[failed], failed=3))
    seen = observe_job(job, [_pod("Failed", "OOM", 137)], None)
    assert seen.failure == "BackoffLimitExceeded: too many; last pod (exit code 137): OOM"
    assert seen.retries == 3


def test_suspended_jobs_are_queued_under_kueue_and_suspended_otherwise() -> None:
    own = _job(suspend=True)
    assert observe_job(_summary(own), [], None).state is ChildState.SUSPENDED
    own["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "q"
    assert observe_job(_summary(own), [], None).state is ChildState.QUEUED


def test_live_progress_goes_to_the_running_phase_only() -> None:
    job = _summary(_job())
    assert observe_job(job, [], {"phase": 0, "step": 3}).progress == {"phase": 0, "step": 3}
    assert observe_job(job, [], {"phase": 1, "step": 3}).progress is None


def test_merge_patch_sends_only_changes_and_nulls_removals() -> None:
    old = {"phase": "Training", "eta": "5m", "curriculum": {"live": {"step": 3}, "currentPhase": 0}}
    new = {"phase": "Training", "curriculum": {"live": {"step": 3}, "currentPhase": 1}}
    assert merge_patch(old, new) == {"eta": None, "curriculum": {"currentPhase": 1}}
    assert merge_patch(new, new) == {}


RECORD = {"phase": 1, "phase_step": 2, "phase_steps": 5, "reward": 0.25, "tier_pass_rate": {"basic": 0.5}}


def test_live_progress_from_a_step_record() -> None:
    live = live_progress({**RECORD, "seconds": {"step": 4.0}}, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    dumped = live.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped == {
        "phase": 1,
        "step": 2,
        "total": 5,
        "meanReward": 0.25,
        "rewardPerTier": {"basic": 0.5},
        "etaSeconds": 12.0,
        "updateTime": "2026-01-02T03:04:05Z",
    }


def test_no_reporter_outside_a_train_pod() -> None:
    assert ProgressReporter.from_environment({}) is None
    assert ProgressReporter.from_environment({"TAROT_RUN_NAME": "r1"}) is None


def test_sandbox_pods_are_locked_down_and_run_with_the_pod_as_boundary() -> None:
    deployment = sandbox_deployment(RUN, "r1-sandbox", spec(), "sbx:1", 2, {})
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1280Mi"}  # 2 workers x 512 + 256
    # Bursty work: half a core per worker requested, a whole one allowed.
    assert container["resources"]["requests"] == {"cpu": "1000m", "memory": "1280Mi"}
    assert {"name": "TAROT_SANDBOX_POD_BOUNDARY", "value": "1"} in container["env"]
    # Its executed tests outlive the pod: `tarot sandbox serve` writes them to the termination message.
    assert {"name": "TAROT_RESULT_FILE", "value": "/dev/termination-log"} in container["env"]


REAL_NODE = PodScheduling(
    node_selector={"tarot.dev/node": "real"},
    tolerations=({"key": "tarot.dev/real-node", "operator": "Exists", "effect": "NoSchedule"},),
)


def test_pod_scheduling_from_the_environment() -> None:
    env = {
        NODE_SELECTOR_ENV: "tarot.dev/node=real,zone=a",
        TOLERATIONS_ENV: '[{"key": "tarot.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}]',
    }
    scheduling = PodScheduling.from_env(env)
    assert scheduling.node_selector == {"tarot.dev/node": "real", "zone": "a"}
    assert scheduling.tolerations == REAL_NODE.tolerations
    assert PodScheduling.from_env({}) == PodScheduling()
    assert OperatorConfig().pod_scheduling == PodScheduling.from_env()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (NODE_SELECTOR_ENV, "tarot.dev/node", "is not KEY=VALUE"),
        (TOLERATIONS_ENV, '{"key": "a"}', "not a JSON list of tolerations"),
        (TOLERATIONS_ENV, '[{"key": "a", "effect": "Sometimes"}]', "not a JSON list of tolerations"),
        (TOLERATIONS_ENV, "[{", "not a JSON list of tolerations"),
    ],
)
def test_bad_pod_scheduling_names_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}: .*{says}"):
        PodScheduling.from_env({name: value})


def test_operator_scheduling_places_every_job_and_the_run_adds_its_own() -> None:
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    run_spec = spec(nodeSelector={"pool": "h100", "tarot.dev/node": "gpu"}, tolerations=[gpu])
    for ref in (ChildRef(ChildKind.DATA), TRAIN0):
        pod = stage_job(RUN, ref, run_spec, settings(scheduling=REAL_NODE))["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"tarot.dev/node": "gpu", "pool": "h100"}  # the run's keys win
        assert pod["tolerations"] == [*REAL_NODE.tolerations, gpu]
    plain = stage_job(RUN, TRAIN0, spec(), settings())["spec"]["template"]["spec"]
    assert "nodeSelector" not in plain and "tolerations" not in plain


def test_sandbox_pods_follow_the_operator_scheduling_not_the_runs_gpu_placement() -> None:
    run_spec = spec(nodeSelector={"pool": "h100"})
    pod = sandbox_deployment(RUN, "r1-sandbox", run_spec, "sbx:1", 1, {}, REAL_NODE)["spec"]["template"][
        "spec"
    ]
    assert pod["nodeSelector"] == {"tarot.dev/node": "real"}
    assert pod["tolerations"] == list(REAL_NODE.tolerations)
    unplaced = sandbox_deployment(RUN, "r1-sandbox", run_spec, "sbx:1", 1, {})["spec"]["template"]["spec"]
    assert "nodeSelector" not in unplaced and "tolerations" not in unplaced


def _sandbox_pod(confinement: SandboxConfinement | None = None) -> dict[str, Any]:
    deployment = sandbox_deployment(RUN, "r1-sandbox", spec(), "sbx:1", 1, {}, None, confinement)
    return dict(deployment["spec"]["template"]["spec"])


def test_sandbox_confinement_chooses_the_seccomp_profile_and_whether_the_pod_is_the_boundary() -> None:
    boundary = {"name": "TAROT_SANDBOX_POD_BOUNDARY", "value": "1"}
    default = _sandbox_pod()
    assert default["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert boundary in default["containers"][0]["env"] and "runtimeClassName" not in default
    # A profile that allows the helpers' namespaces: the jail, and no fallback to the pod boundary.
    jailed = _sandbox_pod(SandboxConfinement.from_env({SANDBOX_SECCOMP_ENV: "Unconfined"}))
    assert jailed["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    assert boundary not in jailed["containers"][0]["env"]
    local = SandboxConfinement.from_env(
        {SANDBOX_SECCOMP_ENV: "Localhost:profiles/tarot-sandbox.json", SANDBOX_RUNTIME_CLASS_ENV: "gvisor"}
    )
    pod = _sandbox_pod(local)
    assert pod["securityContext"]["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/tarot-sandbox.json",
    }
    assert pod["runtimeClassName"] == "gvisor"
    assert OperatorConfig().sandbox_confinement == SandboxConfinement.from_env()


@pytest.mark.parametrize("value", ["Localhost", "Unconfined:x", "runtimedefault", "Strict"])
def test_a_bad_sandbox_seccomp_profile_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=f"^{SANDBOX_SECCOMP_ENV}: '{value}' is not RuntimeDefault"):
        SandboxConfinement.from_env({SANDBOX_SECCOMP_ENV: value})
