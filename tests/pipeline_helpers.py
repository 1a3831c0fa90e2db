"""Helpers for the pipeline tests: run the real `tarot` CLI in a subprocess, share one tiny model.

(Not named conftest.py: tests import these functions, and tests/conftest.py already owns that module name.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The tests in tests/unit/pipeline and tests/e2e build the tiny model from the same bundled problems;
# the cache is content-addressed, so they share one build per machine.
SHARED_MODEL_CACHE = Path(tempfile.gettempdir()) / "tarot-test-model-cache"


def tarot_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-c", "from tarot_jobs.cli import main; main()", *map(str, args)]


def run_tarot(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tarot_command(*args), capture_output=True, text=True, timeout=timeout, env=tarot_env()
    )


def tarot_env() -> dict[str, str]:
    return {**os.environ, "TAROT_MODEL_CACHE": str(SHARED_MODEL_CACHE), "COLUMNS": "200"}
