"""Shared fixtures. The cluster fixtures (`cluster`, `namespace`) live in hack/pytest_cluster.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))

from pytest_cluster import cluster, namespace  # noqa: F401
