"""The stage Jobs of a run (data, probe, train phase i, evaluate before/after), as pure builders.

Each Job runs one `tarot` stage command on the run's workspace volume and hands its small JSON
result back through its termination message (TAROT_RESULT_FILE=/dev/termination-log). A bad-input
exit (code 2) fails the Job at once (podFailurePolicy); other failures are retried up to
training.maxRetries, and a retried train pod resumes from the newest checkpoint (--resume).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tarot_jobs.lifecycle.progress_report import (
    CA_FILE_ENV,
    NAMESPACE_ENV,
    RUN_ENV,
    TOKEN_FILE_ENV,
)
from tarot_jobs.lifecycle.types import ChildKind, ChildRef
from tarot_jobs.spec.model import TarotRunSpec

from .config import PodScheduling
from .names import (
    CHILD_LABEL,
    CONFIG_MOUNT,
    IMAGE_USER,
    JSON,
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    POD_WORKSPACE,
    POLICY_KEY,
    SPEC_KEY,
    WORKSPACE_MOUNT,
    child_name,
    component,
    config_name,
    metadata,
    progress_account_name,
)

CONTAINER = "main"
EXIT_BAD_INPUT = 2  # the CLI's convention: the input (spec, data, options) is at fault
TERMINATION_LOG = "/dev/termination-log"
TOKEN_MOUNT = "/var/run/tarot/progress"
RENDEZVOUS_PORT = 29400  # torchrun's c10d default, as Kubeflow Trainer sets PET_MASTER_PORT
# How long a rank waits for the others to meet (torchrun's static rendezvous; its default, made explicit):
# a peer that never comes fails the pod with a timeout that names the master's address, not a hang.
RENDEZVOUS_TIMEOUT_S = 600
# `tarot train --metrics-port`: the trainer's /metrics, on a container port named "metrics" (the chart's
# PodMonitor scrapes ports named "metrics" and "http"). The process of rank 0 serves it (docs/monitoring.md).
TRAIN_METRICS_PORT = 8090
METRICS_PORT_NAME = "metrics"
JOB_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"

SPEC_PATH = f"{CONFIG_MOUNT}/{SPEC_KEY}"
DATA_DIR = str(POD_WORKSPACE.data)
TRAIN_DIR = str(POD_WORKSPACE.train)


@dataclass(frozen=True)
class JobSettings:
    """What a stage Job needs beyond the run's spec."""

    image: str
    model_cache: str
    suspend: bool  # created suspended (Kueue admits it, or the run is suspended)
    pod_labels: dict[str, str] = field(default_factory=dict)
    phases: int = 1  # the selected policy's phase count: evaluate-after reads the last phase's weights
    scheduling: PodScheduling = field(default_factory=PodScheduling)  # the operator's, for every run


def stage_command(ref: ChildRef, settings: JobSettings) -> list[str]:
    cache = ["--data", DATA_DIR, "--model-cache", settings.model_cache]
    if ref.kind is ChildKind.DATA:
        return ["tarot", "data", "prepare", SPEC_PATH, "--out", DATA_DIR]
    if ref.kind is ChildKind.PROBE:
        return ["tarot", "probe", SPEC_PATH, "--out", str(POD_WORKSPACE.probe), *cache]
    if ref.kind is ChildKind.TRAIN:
        policy = f"{CONFIG_MOUNT}/{POLICY_KEY}"
        return [
            "tarot", "train", SPEC_PATH, "--phase", str(ref.index), "--out", TRAIN_DIR,
            "--resume", "--policy", policy, *cache, "--metrics-port", str(TRAIN_METRICS_PORT),
        ]  # fmt: skip
    if ref.kind is ChildKind.EVALUATE_BEFORE:
        return ["tarot", "evaluate", SPEC_PATH, "--out", str(POD_WORKSPACE.before), *cache]
    if ref.kind is ChildKind.EVALUATE_AFTER:
        model = str(POD_WORKSPACE.final_weights(settings.phases - 1))
        return [
            "tarot",
            "evaluate",
            SPEC_PATH,
            "--out",
            str(POD_WORKSPACE.after),
            "--model",
            model,
            *cache,
        ]
    raise ValueError(f"{ref} is not a Job")


def _resources(spec: TarotRunSpec, ref: ChildRef) -> JSON:
    amounts: dict[str, str] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    # Generation (probe, evaluate) and training use the GPUs; the data check does not.
    if spec.resources.gpus and ref.kind is not ChildKind.DATA:
        amounts["nvidia.com/gpu"] = str(spec.resources.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _multi_node(spec: TarotRunSpec, ref: ChildRef) -> bool:
    return ref.kind is ChildKind.TRAIN and spec.resources.nodes > 1


def _distributed(spec: TarotRunSpec, ref: ChildRef) -> bool:
    """A train phase of more than one process: launched by torchrun (gloo on CPU, NCCL on GPUs)."""
    return ref.kind is ChildKind.TRAIN and spec.training_processes() > 1


def rendezvous_env(spec: TarotRunSpec, job_name: str) -> list[JSON]:
    """torchrun's environment as Kubeflow Trainer sets it (torchrun reads PET_* in place of its flags)."""
    nodes = spec.resources.nodes
    env: list[JSON] = [
        {"name": "PET_NNODES", "value": str(nodes)},
        {"name": "PET_NPROC_PER_NODE", "value": str(spec.resources.node_processes())},
        {"name": "PET_RDZV_CONF", "value": f"timeout={RENDEZVOUS_TIMEOUT_S}"},
    ]
    if nodes > 1:
        index = f"metadata.annotations['{JOB_INDEX_ANNOTATION}']"
        env += [
            {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": index}}},
            # Pod 0 of the Indexed Job, through the headless Service of the same name (pod subdomain).
            {"name": "PET_MASTER_ADDR", "value": f"{job_name}-0.{job_name}"},
            {"name": "PET_MASTER_PORT", "value": str(RENDEZVOUS_PORT)},
        ]
    else:
        env += [
            {"name": "PET_NODE_RANK", "value": "0"},
            {"name": "PET_MASTER_ADDR", "value": "localhost"},
            {"name": "PET_MASTER_PORT", "value": str(RENDEZVOUS_PORT)},
        ]
    return env


def _config_items(ref: ChildRef) -> list[JSON]:
    """The ConfigMap keys a Job reads, named so that the pod waits until they exist (a missing
    listed key fails the volume setup, which the kubelet retries) instead of starting without them."""
    keys = [SPEC_KEY, POLICY_KEY] if ref.kind is ChildKind.TRAIN else [SPEC_KEY]
    return [{"key": key, "path": key} for key in keys]


def stage_job(run: JSON, ref: ChildRef, spec: TarotRunSpec, settings: JobSettings) -> JSON:
    run_name = run["metadata"]["name"]
    name = child_name(run_name, ref)
    train = ref.kind is ChildKind.TRAIN
    command = stage_command(ref, settings)
    if _distributed(spec, ref):
        command = ["torchrun", "--no-python", *command]  # one process per GPU on every node
    env: list[JSON] = [{"name": "TAROT_RESULT_FILE", "value": TERMINATION_LOG}]
    volume_mounts: list[JSON] = [
        {"name": "workspace", "mountPath": WORKSPACE_MOUNT},
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
    ]
    claim = child_name(run_name, ChildRef(ChildKind.WORKSPACE))
    volumes: list[JSON] = [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": claim}},
        {"name": "config", "configMap": {"name": config_name(run_name), "items": _config_items(ref)}},
    ]
    pod_spec: JSON = {
        "restartPolicy": "Never",  # retries are new pods, counted by the Job (podFailurePolicy needs Never)
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # The images run as a non-root user; fsGroup makes the workspace volume writable to it (a new
        # volume's root is root's), changing ownership only when the volume's root does not match yet.
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "fsGroup": IMAGE_USER,
            "fsGroupChangePolicy": "OnRootMismatch",
        },
    }
    if train:
        # Live progress: the train stage patches status.curriculum.live with this token, which may only
        # get/patch this run's status (tarot_jobs/lifecycle/progress_report.py).
        pod_spec["serviceAccountName"] = progress_account_name(run_name)
        env += [
            {"name": RUN_ENV, "value": run_name},
            {"name": NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": TOKEN_FILE_ENV, "value": f"{TOKEN_MOUNT}/token"},
            {"name": CA_FILE_ENV, "value": f"{TOKEN_MOUNT}/ca.crt"},
        ]
        volume_mounts.append({"name": "progress-token", "mountPath": TOKEN_MOUNT, "readOnly": True})
        volumes.append(
            {
                "name": "progress-token",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                    ]
                },
            }
        )
    if _distributed(spec, ref):
        env += rendezvous_env(spec, name)
    container: JSON = {
        "name": CONTAINER,
        "image": settings.image,
        "command": command,
        "env": env,
        "resources": _resources(spec, ref),
        "volumeMounts": volume_mounts,
        "terminationMessagePath": TERMINATION_LOG,
        # The result file when the stage wrote one; else (a crash) the log's tail: the failure's reason.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if train:
        container["ports"] = [
            {"name": METRICS_PORT_NAME, "containerPort": TRAIN_METRICS_PORT, "protocol": "TCP"}
        ]
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    place_on_training_nodes(pod_spec, settings.scheduling, spec)

    job_labels = {CHILD_LABEL: ref.suffix()}
    if spec.resources.kueue_queue is not None:
        job_labels[KUEUE_QUEUE_LABEL] = spec.resources.kueue_queue
        if spec.resources.kueue_priority_class is not None:
            job_labels[KUEUE_PRIORITY_LABEL] = spec.resources.kueue_priority_class
    meta = metadata(run, name, component(ref), job_labels)
    pod_labels = {**meta["labels"], **settings.pod_labels}
    pod_labels.pop(KUEUE_QUEUE_LABEL, None)
    pod_labels.pop(KUEUE_PRIORITY_LABEL, None)

    job_spec: JSON = {
        "suspend": settings.suspend,
        # One rank's failure fails every rank of a multi-node phase (their collectives break), and the Job
        # counts each failed pod: maxRetries counts such group restarts.
        "backoffLimit": spec.training.max_retries * (spec.resources.nodes if _multi_node(spec, ref) else 1),
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_BAD_INPUT]},
                },
                # A pod evicted or preempted (node drain, Kueue) is not the stage's fault: not counted.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    }
    if _multi_node(spec, ref):
        nodes = spec.resources.nodes
        job_spec.update(completions=nodes, parallelism=nodes, completionMode="Indexed")
        pod_spec["subdomain"] = name  # pod i answers as <job>-i.<job> through the headless Service
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}


def place_on_training_nodes(pod_spec: JSON, scheduling: PodScheduling, spec: TarotRunSpec) -> None:
    """The operator's scheduling for every run, then the run's own (its nodeSelector keys win): where
    the stage Jobs and the vLLM server go."""
    node_selector = {**scheduling.node_selector, **spec.resources.node_selector}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = [
        *scheduling.tolerations,
        *(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in spec.resources.tolerations),
    ]
    if tolerations:
        pod_spec["tolerations"] = tolerations


def rendezvous_service(run: JSON, ref: ChildRef) -> JSON:
    """The headless Service that gives a multi-node phase's pods DNS names (<job>-<index>.<job>)."""
    name = child_name(run["metadata"]["name"], ref)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, name, component(ref), {CHILD_LABEL: ref.suffix()}),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # rendezvous happens before any pod is "ready"
            "selector": {"job-name": name},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }


def needs_rendezvous_service(spec: TarotRunSpec, ref: ChildRef) -> bool:
    return _multi_node(spec, ref)
