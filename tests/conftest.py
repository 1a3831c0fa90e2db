"""Shared fixtures: the reference data, and `require_isolation` (isolation assertions are made, or skipped
with the reason; TAROT_EXPECT_ISOLATION=full makes them fail). The cluster fixtures (`cluster`,
`namespace`) live in hack/pytest_cluster.py."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI sets this to 1: the tests that read the reference data then fail when it is missing, never skip.
REQUIRE_REFERENCE_DATA = "TAROT_REQUIRE_REFERENCE_DATA"
# CI sets this to full: an isolation test fails instead of skipping when the jail lacks a namespace.
EXPECT_ISOLATION = "TAROT_EXPECT_ISOLATION"
sys.path.insert(0, str(REPO / "hack"))

from pytest_cluster import cluster, namespace, operator_pod, real_node_images  # noqa: E402, F401

from tarot_jobs.sandbox.local import LocalSandbox  # noqa: E402
from tarot_jobs.sandbox.pool import isolation_features  # noqa: E402


def _reference_data_candidates() -> list[Path]:
    """Where ../shared/data may be: named by TAROT_REFERENCE_DATA, beside this checkout, or beside
    the checkout this one was cloned from (CI runs on a clone of main, away from shared/)."""
    candidates = [REPO.parent / "shared" / "data"]
    if named := os.environ.get("TAROT_REFERENCE_DATA"):
        candidates.insert(0, Path(named))
    origin = subprocess.run(
        ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data")
    return candidates


@pytest.fixture(scope="session")
def tarot_sample() -> Path:
    """The reference TAROT sample (shared/data/tarot-sample.jsonl); never copied into the repo."""
    for directory in _reference_data_candidates():
        sample = directory / "tarot-sample.jsonl"
        if sample.is_file():
            return sample
    where = ", ".join(str(d) for d in _reference_data_candidates())
    message = f"reference data tarot-sample.jsonl not found in {where} (set TAROT_REFERENCE_DATA)"
    if os.environ.get(REQUIRE_REFERENCE_DATA) == "1":
        pytest.fail(f"{message}; {REQUIRE_REFERENCE_DATA}=1 (CI) requires it")
    pytest.skip(message)


@pytest.fixture
def require_isolation() -> Callable[..., None]:
    """`require_isolation(sandbox, "pid", "mnt")`: skip with the reason when missing, or fail when
    TAROT_EXPECT_ISOLATION=full says CI expects the whole jail."""

    def require(sandbox: LocalSandbox, *features: str) -> None:
        missing = sorted(set(features) - isolation_features(sandbox.capabilities))
        if not missing:
            return
        message = f"the sandbox lacks {', '.join(missing)} here (isolation: {sandbox.capabilities})"
        if os.environ.get(EXPECT_ISOLATION) == "full":
            pytest.fail(f"{message}; {EXPECT_ISOLATION}=full requires it")
        pytest.skip(message)

    return require
