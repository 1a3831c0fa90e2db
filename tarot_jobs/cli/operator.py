"""`tarot operator run`: the kopf operator that drives TarotRun resources on a cluster.

kopf and the operator package are imported inside the command, so `tarot --help` stays light.
"""

from __future__ import annotations

from typing import Annotated

import typer

operator_app = typer.Typer(help="The Kubernetes operator for TarotRun resources.", no_args_is_help=True)


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        for item in filter(None, pair.split(",")):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--pod-label")
            labels[key] = value
    return labels


@operator_app.command("run")
def run_command(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            envvar="TAROT_OPERATOR_NAMESPACES",
            help="Namespace to watch (repeatable; default: every namespace).",
        ),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=1, max=65535, envvar="TAROT_OPERATOR_METRICS_PORT", help="Prometheus /metrics port."
        ),
    ] = 8080,
    health_port: Annotated[
        int,
        typer.Option(
            min=1, max=65535, envvar="TAROT_OPERATOR_HEALTH_PORT", help="/healthz and /readyz port."
        ),
    ] = 8081,
    trainer_image: Annotated[
        str | None,
        typer.Option(
            envvar="TAROT_TRAINER_IMAGE", help="Image of the stage Jobs (spec.images.trainer wins)."
        ),
    ] = None,
    sandbox_image: Annotated[
        str | None,
        typer.Option(envvar="TAROT_SANDBOX_IMAGE", help="Image of the sandbox (spec.images.sandbox wins)."),
    ] = None,
    vllm_server_image: Annotated[
        str | None,
        typer.Option(
            envvar="TAROT_VLLM_SERVER_IMAGE",
            help="Image of a run's vLLM server, training.generation vllm-server (spec.images.vllmServer "
            "wins; default: the trainer image).",
        ),
    ] = None,
    job_sandbox: Annotated[
        str,
        typer.Option(
            envvar="TAROT_OPERATOR_JOB_SANDBOX",
            help="service: Jobs call the run's sandbox Service; in-process: Jobs run the executor in their "
            "own pod and the sandbox Deployment has 0 replicas (clusters without pod networking, "
            "such as hack/cluster).",
        ),
    ] = "service",
    pod_label: Annotated[
        list[str] | None,
        typer.Option(
            "--pod-label",
            envvar="TAROT_OPERATOR_POD_LABELS",
            help="KEY=VALUE added to every pod (repeatable).",
        ),
    ] = None,
    model_cache: Annotated[
        str | None,
        typer.Option(envvar="TAROT_OPERATOR_MODEL_CACHE", help="--model-cache of the stage Jobs."),
    ] = None,
    resync_seconds: Annotated[
        float,
        typer.Option(
            min=1.0, envvar="TAROT_OPERATOR_RESYNC_SECONDS", help="Reconcile every run at least this often."
        ),
    ] = 60.0,
    leader_election_lease: Annotated[
        str | None,
        typer.Option(
            envvar="TAROT_OPERATOR_LEADER_ELECTION_LEASE",
            help="NAMESPACE/NAME of a coordination.k8s.io Lease: run as one of several replicas, driving "
            "runs only while holding it (default: alone, no election).",
        ),
    ] = None,
    leader_election_lease_seconds: Annotated[
        float,
        typer.Option(
            min=3.0,
            envvar="TAROT_OPERATOR_LEADER_ELECTION_LEASE_SECONDS",
            help="Seconds a silent leader's Lease holds before a standby takes over (renewed every 2/15).",
        ),
    ] = 15.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Watch TarotRuns and run each one: workspace, sandbox, data, probe, phases, evaluation."""
    from tarot_operator.config import DEFAULT_MODEL_CACHE, JobSandbox, OperatorConfig
    from tarot_operator.main import run

    try:
        mode = JobSandbox(job_sandbox)
    except ValueError:
        raise typer.BadParameter("choose service or in-process", param_hint="--job-sandbox") from None
    namespaces = tuple(n for item in namespace or [] for n in item.split(",") if n)
    defaults = OperatorConfig()
    config = OperatorConfig(
        namespaces=namespaces,
        metrics_port=metrics_port,
        health_port=health_port,
        trainer_image=trainer_image or defaults.trainer_image,
        sandbox_image=sandbox_image or defaults.sandbox_image,
        vllm_server_image=vllm_server_image or trainer_image or defaults.vllm_server_image,
        job_sandbox=mode,
        pod_labels=_labels(pod_label or []),
        model_cache=model_cache or DEFAULT_MODEL_CACHE,
        resync_seconds=resync_seconds,
        leader_election_lease=leader_election_lease,
        leader_election_lease_seconds=leader_election_lease_seconds,
    )
    if leader_election_lease is not None:
        from tarot_operator.leader import LeaseSettings

        try:
            LeaseSettings.parse(leader_election_lease, leader_election_lease_seconds)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--leader-election-lease") from None
    run(config, verbose=verbose)


def register(app: typer.Typer) -> None:
    app.add_typer(operator_app, name="operator")
