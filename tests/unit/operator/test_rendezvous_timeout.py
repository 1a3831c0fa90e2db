"""A rank of a multi-node phase whose peers never come stops at the rendezvous timeout, saying so.

The environment is the one the operator renders for a train Job of `resources.nodes: 2`
(jobs.rendezvous_env: torchrun reads PET_* in place of its flags), for the rank of the second node,
with a master that never starts and the timeout shortened from RENDEZVOUS_TIMEOUT_S to 5 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from tarot_operator.jobs import RENDEZVOUS_TIMEOUT_S, rendezvous_env

from tarot_jobs.spec.model import TarotRunSpec

pytestmark = pytest.mark.skipif(shutil.which("torchrun") is None, reason="needs torch's torchrun")


def test_a_rank_whose_master_never_starts_fails_at_the_rendezvous_timeout() -> None:
    spec = TarotRunSpec.model_validate(
        {"resources": {"nodes": 2}, "training": {"perDeviceTrainBatchSize": 4, "numGenerations": 4}}
    )
    rendered = {e["name"]: e["value"] for e in rendezvous_env(spec, "phase") if "value" in e}
    assert rendered["PET_NNODES"] == "2" and rendered["PET_NPROC_PER_NODE"] == "1"
    assert rendered["PET_RDZV_CONF"] == f"timeout={RENDEZVOUS_TIMEOUT_S}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("PET_")}
    env.update(rendered)
    env.update(
        PET_NODE_RANK="1", PET_MASTER_ADDR="127.0.0.1", PET_MASTER_PORT="29499", PET_RDZV_CONF="timeout=5"
    )
    started = time.monotonic()
    result = subprocess.run(
        ["torchrun", "--no-python", "true"], env=env, capture_output=True, text=True, timeout=120
    )
    waited = time.monotonic() - started
    assert result.returncode != 0
    assert "timed out" in result.stderr, result.stderr[-3000:]
    assert 5 <= waited < 60, waited
