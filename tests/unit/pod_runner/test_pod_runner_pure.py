"""The pod runner's pure parts, without a cluster: $(VAR) expansion, downward-API fields, resource
divisors, path mapping, exit-code outcomes, termination messages and leftover processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import cast

import pytest
from pod_runner import pids, pod_status
from pod_runner.environment import ContainerConfigError, EnvironmentResolver, expand
from pod_runner.identity import automounts
from pod_runner.kube_api import JSON, KubeApi
from pod_runner.supervisor import TERMINATION_MESSAGE_LIMIT, _termination_message
from pod_runner.volumes import PathMap

# The fields and values below never reach the API: these code paths only read the pod and the node.
NO_API = cast(KubeApi, None)


def _pod(**container: object) -> JSON:
    return {
        "metadata": {
            "name": "probe-0",
            "namespace": "runs",
            "uid": "0123-4567",
            "labels": {"team": "curriculum", "app": "tarot"},
            "annotations": {"tarot.dev/run": "r1"},
        },
        "spec": {
            "nodeName": "cpu-node-0",
            "serviceAccountName": "trainer",
            "containers": [{"name": "main", **container}],
        },
        "status": {
            "hostIP": "10.0.0.1",
            "podIP": "10.0.0.7",
            "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
        },
    }


NODE: JSON = {"status": {"allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "8"}}}


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("$(A)/x", "a/x"),
        ("$$(A)", "$(A)"),  # $$ escapes: the reference stays literal
        ("$$$(A)", "$a"),
        ("cost $$5", "cost $5"),
        ("$(MISSING) stays", "$(MISSING) stays"),
        ("$(A", "$(A"),  # unterminated: verbatim
        ("$A and $", "$A and $"),  # only $(NAME) is a reference
        ("$(A)$(B)", "ab"),
    ],
)
def test_expansion_follows_the_kubelet(value: str, expanded: str) -> None:
    assert expand(value, {"A": "a", "B": "b"}) == expanded


def test_env_refers_only_to_earlier_variables_and_env_from_comes_first() -> None:
    container = {
        "env": [
            {"name": "FIRST", "value": "1-$(SECOND)"},  # SECOND is defined later: kept verbatim
            {"name": "SECOND", "value": "2-$(FIRST)"},
            {"name": "LITERAL", "value": "$$(FIRST)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "WHERE", "value": "$(POD)@$(NODE_NAME)"},
        ]
    }
    env = EnvironmentResolver(NO_API, _pod(**container), NODE).container_env(container)
    assert env == {
        "FIRST": "1-$(SECOND)",
        "SECOND": "2-1-$(SECOND)",
        "LITERAL": "$(FIRST)",
        "POD": "probe-0",
        "WHERE": "probe-0@$(NODE_NAME)",
    }


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "probe-0"),
        ("metadata.namespace", "runs"),
        ("metadata.uid", "0123-4567"),
        ("metadata.labels['team']", "curriculum"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['tarot.dev/run']", "r1"),
        ("metadata.labels", 'app="tarot"\nteam="curriculum"'),
        ("spec.nodeName", "cpu-node-0"),
        ("spec.serviceAccountName", "trainer"),
        ("status.hostIP", "10.0.0.1"),
        ("status.podIP", "10.0.0.7"),
        ("status.podIPs", "10.0.0.7,fd00::7"),
    ],
)
def test_downward_api_fields(path: str, value: str) -> None:
    assert EnvironmentResolver(NO_API, _pod(), NODE).field_value(path) == value


def test_an_unsupported_downward_field_is_a_config_error_naming_it() -> None:
    with pytest.raises(ContainerConfigError, match=r"spec\.hostname"):
        EnvironmentResolver(NO_API, _pod(), NODE).field_value("spec.hostname")


@pytest.mark.parametrize(
    ("resources", "ref", "value"),
    [
        ({"limits": {"cpu": "250m"}}, {"resource": "limits.cpu", "divisor": "1m"}, "250"),
        ({"limits": {"cpu": "250m"}}, {"resource": "limits.cpu"}, "1"),  # rounded up, never 0
        ({"limits": {"cpu": "3"}}, {"resource": "limits.cpu"}, "3"),
        ({"limits": {"memory": "1Gi"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "1024"),
        ({"limits": {"memory": "1500Ki"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "2"),
        ({"limits": {"memory": "512Mi"}}, {"resource": "requests.memory", "divisor": "1Mi"}, "512"),
        ({}, {"resource": "limits.cpu"}, "16"),  # no limit: the node's allocatable
        ({}, {"resource": "limits.memory", "divisor": "1Gi"}, "64"),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "4"}}, {"resource": "requests.cpu"}, "2"),
    ],
)
def test_resource_fields_and_divisors(resources: JSON, ref: JSON, value: str) -> None:
    container = {"resources": resources}
    assert EnvironmentResolver(NO_API, _pod(**container), NODE).resource_value(ref, container) == value


def test_paths_map_by_whole_components_and_longest_prefix(tmp_path: Path) -> None:
    paths = PathMap()
    paths.add("/data", tmp_path / "d")
    paths.add("/data/cache", tmp_path / "c")
    paths.add("/dev/termination-log", tmp_path / "t")
    assert paths.translate("/data/x /data/cache/y") == f"{tmp_path}/d/x {tmp_path}/c/y"
    assert paths.translate("--out=/data") == f"--out={tmp_path}/d"
    assert paths.translate("/database /mnt/data") == "/database /mnt/data"  # not a path prefix
    assert paths.translate("/dev/termination-log") == f"{tmp_path}/t"


@pytest.mark.parametrize(
    ("code", "exit_code", "reason", "signal_number"),
    [(0, 0, "Completed", None), (3, 3, "Error", None), (-9, 137, "Error", 9), (-15, 143, "Error", 15)],
)
def test_exit_codes_become_terminated_states(
    code: int, exit_code: int, reason: str, signal_number: int | None
) -> None:
    state = pod_status.Outcome(code, "t0", "t1", "").terminated()
    assert (state["exitCode"], state["reason"], state.get("signal")) == (exit_code, reason, signal_number)
    assert "message" not in state  # an empty message is left out, as the kubelet does


def test_terminal_phase_follows_the_exit_code_and_the_pod_reason() -> None:
    pod = _pod(image="x")
    ok = pod_status.Outcome(0, "t0", "t1", '{"train": 3}', "local://1")
    status = pod_status.terminal(pod, "10.0.0.1", "t0", ok, restarts=1)["status"]
    assert status["phase"] == "Succeeded"
    [container] = status["containerStatuses"]
    assert container["state"]["terminated"]["message"] == '{"train": 3}' and container["restartCount"] == 1
    failed = pod_status.terminal(pod, "10.0.0.1", "t0", pod_status.Outcome(1, "t0", "t1"), 0)["status"]
    assert failed["phase"] == "Failed"
    deadline = pod_status.terminal(pod, "10.0.0.1", "t0", ok, 0, "DeadlineExceeded", "too long")["status"]
    assert (deadline["phase"], deadline["reason"]) == ("Failed", "DeadlineExceeded")


def test_termination_message_is_read_up_to_the_kubelet_limit(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    assert _termination_message(path) == ""  # never written
    path.write_text("x" * (TERMINATION_MESSAGE_LIMIT + 100))
    assert len(_termination_message(path)) == TERMINATION_MESSAGE_LIMIT


def test_automount_false_on_the_pod_needs_no_lookup() -> None:
    pod = _pod()
    pod["spec"]["automountServiceAccountToken"] = False
    assert automounts(NO_API, pod) is False
    pod["spec"]["automountServiceAccountToken"] = True
    assert automounts(NO_API, pod) is True


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_leftover_processes_are_killed_but_a_reused_pid_is_spared(tmp_path: Path) -> None:
    leftover, stranger = _sleeper(), _sleeper()
    try:
        pids.record(tmp_path, "pod-a", leftover.pid)
        (tmp_path / "pids" / "pod-b").write_text(f"{stranger.pid} 1")  # recorded start time differs
        assert pids.kill_leftovers(tmp_path) == [leftover.pid]
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        time.sleep(0.1)
        assert stranger.poll() is None
        assert list((tmp_path / "pids").iterdir()) == []
    finally:
        for process in (leftover, stranger):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
