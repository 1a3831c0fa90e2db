"""The jail works wherever tarot is installed: a venv under /tmp (its interpreter a symlink reached through
a symlinked directory, or a copy of the binary living under /tmp itself), with tarot itself under /tmp too.

Before, a jail could not be built there (a tmpfs on /tmp hid, or collided with, what the root must show:
EEXIST), and every test became a sandbox error. Each case makes a real venv, installs this checkout's
tarot_jobs beside it under /tmp, and runs a program through a warm, jailed helper started from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PROBE = """
import json, tarot_jobs
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, TestSpec
code = "import os, tempfile; print(json.dumps([os.listdir('/'), os.path.exists(%r), tempfile.gettempdir()]))"
with LocalSandbox(1) as sandbox:
    [result] = sandbox.run_batch([ExecutionRequest(code="import json\\n" + code, tests=[TestSpec()])])
    print(json.dumps({"status": result.results[0].status, "detail": result.results[0].detail,
                      "stdout": result.results[0].stdout, "path": result.path,
                      "isolation": sandbox.capabilities, "tarot": tarot_jobs.__file__}))
"""


@pytest.mark.parametrize("layout", ["symlinked", "copied"])
def test_a_venv_under_tmp_runs_jailed(layout: str) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="tarot-venv-") as place:
        venv, link, src = Path(place) / "venv", Path(place) / "link", Path(place) / "src"
        copies = ["--copies"] if layout == "copied" else []
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", *copies, str(venv)],
            check=True,
        )
        link.symlink_to(venv)
        python = link / "bin" / "python"
        assert os.path.realpath(python).startswith("/tmp/") == (layout == "copied")
        shutil.copytree(REPO / "tarot_jobs", src / "tarot_jobs", ignore=shutil.ignore_patterns("__pycache__"))
        done = subprocess.run(
            [str(python), "-c", PROBE % str(REPO)],
            capture_output=True,
            text=True,
            cwd=place,
            env={**os.environ, "PYTHONPATH": str(src)},
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["tarot"] == str(src / "tarot_jobs" / "__init__.py"), outcome  # tarot under /tmp
    assert outcome["status"] == "completed", outcome
    assert outcome["path"].startswith("forkserver+jail("), outcome  # warm and jailed, no fallback
    root, sees_repo, scratch = json.loads(outcome["stdout"])
    assert not sees_repo and "work" not in root, root
    assert outcome["isolation"].get("root") == "minimal", outcome
    assert scratch == "/var/tmp", scratch  # /tmp shows the venv, so the scratch moved
