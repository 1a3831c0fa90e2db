"""`tarot sandbox serve` started as a process on a free loopback port, for the tests and the benches."""

from __future__ import annotations

import re
import select
import subprocess
import sys

CLI = [sys.executable, "-c", "from tarot_jobs.cli import main; main()"]


def start_sandbox_service(
    *options: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`tarot sandbox serve` on a free loopback port, and its URL once it printed it (60 s at most)."""
    process = subprocess.Popen(
        [*CLI, "sandbox", "serve", "--host", "127.0.0.1", "--port", "0", *options],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if ready else ""
    match = re.search(r"http://[\d.]+:\d+", line)
    if not match:
        process.kill()
        raise AssertionError(f"the sandbox service did not start: {line!r}")
    return process, match.group(0)
