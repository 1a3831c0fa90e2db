"""Training across pods for real: a 2-node phase on the real node's pod network (issue 17 items 2 and 3).

A TarotRun with `resources.nodes: 2` makes each curriculum phase an Indexed Job of two pods that meet
through the phase's headless Service (`<job>-0.<job>`, torchrun's static rendezvous, gloo on CPU). Both
pods are containers of the CPU trainer image on the real node, on the CNI bridge.

- One training, not two: every phase's result, in the run's status and in each pod's termination
  message, records world size 2; both ranks end each phase with the same weights (their SHA-256 in
  phase.json); each step, completion and checkpoint is written once; phase 1 resumes the 2-rank
  checkpoint of phase 0; and the run trains on exactly the prompts, step by step, that one process
  trains on with the same global batch (`tarot run` here, one process), with reward, KL and loss
  within sampling noise of it (pipeline_helpers.agree_within_sampling_noise).
- One rank killed: deleting pod 1 mid-phase fails rank 0 too (its collective breaks: no stuck rank,
  within a bound), the Job's own retry (no second Job) starts both ranks again, and they resume from
  the phase's newest checkpoint.

The files are read where the local cluster's provisioner keeps the run's volume (a hostPath).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_helpers import SHARED_MODEL_CACHE, agree_within_sampling_noise, prompts_by_step, run_tarot
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster, container_id, terminated_state

from tarot_jobs.atomic import is_complete
from tarot_jobs.pipeline.training.steplog import COMPLETIONS_FILE, STEPS_FILE, read_jsonl

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

NODE = "real-node-0"
GLOBAL_BATCH = 8  # completions per step: 2 prompts x 4 generations, 4 per rank
RUN_TIMEOUT_S = 1500.0
# A rank whose peer died must fail at once (gloo reports the closed connection), not wait out the
# collective timeout (30 min): this bounds "at once" with room for a loaded 2-core machine.
PEER_FAILURE_BOUND_S = 120.0


def _spec(*, steps: int, nodes: int, save_steps: int) -> dict[str, Any]:
    return {
        "model": {"name": "tiny", "dtype": "float32"},
        "probe": {"problems": 2, "samples": 1, "temperature": 0.0, "maxNewTokens": 32},
        "curriculum": {
            "policy": "custom",
            "phases": [
                {"start": 0.0, "end": 0.5, "tiers": ["basic"]},
                {"start": 0.5, "end": 1.0, "tiers": ["basic", "intermediate", "complex", "edge"]},
            ],
        },
        "reward": {"normalize": True, "formatWeight": 0.1},
        "training": {
            "maxSteps": steps,
            "learningRate": 3.0e-3,
            "beta": 0.05,
            "numGenerations": 4,
            "perDeviceTrainBatchSize": GLOBAL_BATCH // nodes,
            "maxPromptLength": 256,
            "maxCompletionLength": 64,
            "temperature": 0.8,
            "saveSteps": save_steps,
            "loggingSteps": 1,
            "maxRetries": 2,
        },
        "sandbox": {"workers": 1, "timeLimitSeconds": 2},
        "evaluation": {"problems": 2, "maxNewTokens": 32, "baseline": False},
        # Two 500m pods, the sandbox's 500m and the operator fit the 2-core real node.
        "resources": {"nodes": nodes, "cpu": "500m", "memory": "3Gi"},
        "storage": {"size": "1Gi"},
    }


def _manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": name}, "spec": spec}


class Run:
    """A TarotRun of this test, its Jobs and pods, and its workspace as the provisioner keeps it."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.path = f"/apis/tarot.dev/v1alpha1/namespaces/{namespace}/tarotruns/{name}"

    def apply(self, spec: dict[str, Any]) -> None:
        self.cluster.kubectl(
            "apply", "-n", self.namespace, "-f", "-", input=json.dumps(_manifest(self.name, spec))
        )

    def get(self) -> JSON:
        return self.cluster.api.get(self.path)

    def wait_succeeded(self) -> JSON:
        def succeeded() -> JSON | None:
            run = self.get()
            phase = (run.get("status") or {}).get("phase")
            if phase == "Failed":
                raise AssertionError(f"{self.name} failed: {json.dumps(run['status'], indent=1)[-4000:]}")
            return run if phase == "Succeeded" else None

        return self.cluster.wait_for(
            f"{self.name} to succeed", succeeded, timeout=RUN_TIMEOUT_S, interval=1.0
        )

    def jobs(self, child: str) -> list[JSON]:
        selector = f"tarot.dev/run={self.name},tarot.dev/child={child}"
        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        return list(self.cluster.api.get(path, params={"labelSelector": selector})["items"])

    def pods(self, job: str) -> list[JSON]:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        return list(self.cluster.api.get(path, params={"labelSelector": f"job-name={job}"})["items"])

    def workspace(self) -> Path:
        claim = self.cluster.api.get(
            f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims/{self.name}-workspace"
        )
        volume = self.cluster.api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
        return Path(volume["spec"]["hostPath"]["path"])

    def phase(self, index: int) -> dict[str, Any]:
        summary: dict[str, Any] = json.loads(
            (self.workspace() / "train" / f"phase-{index}" / "phase.json").read_text()
        )
        return summary

    def delete(self) -> None:
        self.cluster.kubectl(
            "delete", "tarotrun", self.name, "-n", self.namespace, "--timeout=180s", check=False
        )


def _index(pod: JSON) -> str:
    return str(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])


def _step_seconds(steps: list[dict[str, Any]]) -> float:
    return statistics.median(s["seconds"]["step"] for s in steps if s["seconds"].get("step") is not None)


def test_a_two_pod_phase_is_one_training(
    cluster: Cluster, namespace: str, operator_pod: JSON, tmp_path: Path
) -> None:
    spec = _spec(steps=12, nodes=2, save_steps=2)
    run = Run(cluster, namespace, "two-pods")
    started = time.monotonic()
    run.apply(spec)
    try:
        status = run.wait_succeeded()["status"]
        print(f"2-pod run: Succeeded {time.monotonic() - started:.0f} s after apply")
        assert [p["worldSize"] for p in status["curriculum"]["phases"]] == [2, 2]
        for index in (0, 1):
            [job] = run.jobs(f"train-{index}")
            assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
            assert job["status"].get("succeeded") == 2
            pods = run.pods(job["metadata"]["name"])
            assert sorted(_index(p) for p in pods) == ["0", "1"]
            results = []
            for pod in pods:  # two containers on the real node, two addresses on the pod network
                assert pod["spec"]["nodeName"] == NODE
                container_id(pod)
                ended = terminated_state(pod)
                assert ended and ended["exitCode"] == 0, ended
                results.append(json.loads(ended["message"]))
            assert len({p["status"]["podIP"] for p in pods}) == 2
            assert results[0] == results[1] and results[0]["worldSize"] == 2, results

        workspace = run.workspace()
        for index in (0, 1):
            phase_dir = workspace / "train" / f"phase-{index}"
            summary = run.phase(index)
            digests = summary["rank_weights_sha256"]
            assert len(digests) == 2 and digests[0] == digests[1], digests
            steps = [s["step"] for s in read_jsonl(phase_dir / STEPS_FILE)]
            assert steps == list(range(summary["step_offset"] + 1, summary["global_step"] + 1))
            per_step = {c["step"] for c in read_jsonl(phase_dir / COMPLETIONS_FILE)}
            assert len(read_jsonl(phase_dir / COMPLETIONS_FILE)) == GLOBAL_BATCH * len(per_step)
            boundary = phase_dir / f"checkpoint-{summary['global_step']}"
            assert is_complete(boundary)
            assert sorted(p.name for p in boundary.glob("rng_state*")) == [
                "rng_state_0.pth",
                "rng_state_1.pth",
            ]
        assert run.phase(1)["resumed_from_step"] == run.phase(0)["global_step"] == 6

        # The same run by one process with the same global batch, on this machine.
        one = tmp_path / "one-process"
        spec_file = tmp_path / "one.yaml"
        one_process = {**spec, "training": {**spec["training"], "perDeviceTrainBatchSize": GLOBAL_BATCH}}
        one_process["resources"] = {}  # one node, one process
        spec_file.write_text(yaml.safe_dump(_manifest("one", one_process)))
        result = run_tarot("run", spec_file, "--workdir", one, "--model-cache", SHARED_MODEL_CACHE)
        assert result.returncode == 0, result.stderr[-4000:]
        assert prompts_by_step(one / "train", phases=2) == prompts_by_step(workspace / "train", phases=2)
        steps_one = [s for i in (0, 1) for s in read_jsonl(one / "train" / f"phase-{i}" / STEPS_FILE)]
        steps_two = [s for i in (0, 1) for s in read_jsonl(workspace / "train" / f"phase-{i}" / STEPS_FILE)]
        for key in ("reward", "kl", "loss"):
            agree_within_sampling_noise([s[key] for s in steps_one], [s[key] for s in steps_two], key)
        print(
            "median seconds per step: 1 process (local) "
            f"{_step_seconds(steps_one):.2f}, 2 pods {_step_seconds(steps_two):.2f}; mean reward "
            f"{statistics.fmean(s['reward'] for s in steps_one):.4f} vs "
            f"{statistics.fmean(s['reward'] for s in steps_two):.4f}, mean KL "
            f"{statistics.fmean(s['kl'] for s in steps_one):.3f} vs "
            f"{statistics.fmean(s['kl'] for s in steps_two):.3f}"
        )
    finally:
        run.delete()


def test_killing_one_rank_restarts_both_from_the_newest_checkpoint(
    cluster: Cluster, namespace: str, operator_pod: JSON
) -> None:
    run = Run(cluster, namespace, "kill-a-rank")
    run.apply(_spec(steps=24, nodes=2, save_steps=2))  # phase 0: 12 steps, a checkpoint every 2
    try:
        phase_dir = (
            cluster.wait_for("the run's workspace", lambda: _workspace_or_none(run), timeout=600)
            / "train"
            / "phase-0"
        )

        def checkpoint_with_both_ranks_running() -> int | None:
            newest = _newest_checkpoint(phase_dir)
            [job] = run.jobs("train-0") or [None]
            if newest is None or newest < 4 or job is None:
                return None
            running = [p for p in run.pods(job["metadata"]["name"]) if p["status"].get("phase") == "Running"]
            return newest if len(running) == 2 else None

        seen = cluster.wait_for(
            "phase 0 to checkpoint step 4", checkpoint_with_both_ranks_running, timeout=900
        )
        [job] = run.jobs("train-0")
        pods = {_index(p): p for p in run.pods(job["metadata"]["name"])}
        killed_at = time.monotonic()
        cluster.kubectl("delete", "pod", pods["1"]["metadata"]["name"], "-n", namespace, "--wait=false")

        # Rank 0 is not left waiting for its peer: its pod fails on its own, within the bound.
        rank0 = f"/api/v1/namespaces/{namespace}/pods/{pods['0']['metadata']['name']}"
        ended = cluster.wait_for(
            "rank 0 to fail after its peer was killed",
            lambda: terminated_state(cluster.api.get(rank0)),
            timeout=PEER_FAILURE_BOUND_S,
        )
        print(
            f"rank 0 failed {time.monotonic() - killed_at:.1f} s after pod 1 was deleted "
            f"(exit {ended['exitCode']})"
        )
        assert ended["exitCode"] != 0
        newest_at_failure = _newest_checkpoint(phase_dir)
        assert newest_at_failure is not None and newest_at_failure >= seen

        run.wait_succeeded()
        [job] = run.jobs("train-0")  # the Job's own retry: no second Job for the phase
        assert job["status"].get("succeeded") == 2 and job["status"].get("failed", 0) >= 2, job["status"]
        summary = run.phase(0)
        assert summary["resumed_from"].endswith(f"phase-0/checkpoint-{newest_at_failure}"), summary[
            "resumed_from"
        ]
        assert summary["resumed_from_step"] == newest_at_failure
        assert [s["step"] for s in read_jsonl(phase_dir / STEPS_FILE)] == list(range(1, 13))
        digests = summary["rank_weights_sha256"]
        assert len(digests) == 2 and digests[0] == digests[1]
        print(f"killed at checkpoint {seen}; both ranks resumed from checkpoint {newest_at_failure}")
    finally:
        run.delete()


def _workspace_or_none(run: Run) -> Path | None:
    try:
        return run.workspace()
    except Exception:  # not bound yet
        return None


def _newest_checkpoint(phase_dir: Path) -> int | None:
    steps = [
        int(p.name.removeprefix("checkpoint-"))
        for p in phase_dir.glob("checkpoint-*")
        if p.name.removeprefix("checkpoint-").isdigit() and is_complete(p)
    ]
    return max(steps, default=None)
