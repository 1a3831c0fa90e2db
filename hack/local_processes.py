"""The processes the tests and the benches start on this machine: `tarot sandbox serve` on a free loopback
port, and `tarot operator run` (`OperatorProcess`: a real process, not kopf's in-thread runner, so it can
be SIGKILLed and restarted, and its memory measured, like the operator's pod) with `apply_crd` for it."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a process a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OperatorProcess:
    """Starts, waits for, kills and restarts one operator process with fixed arguments."""

    def __init__(self, kubeconfig: Path, log_file: Path, *args: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_file = log_file
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, ready_timeout: float = 60.0) -> None:
        command = [
            sys.executable, "-c", "from tarot_jobs.cli import main; main()", "operator", "run",
            "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port), *self.args,
        ]  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the operator was not ready after {ready_timeout:.0f} s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizer work, exactly like a crashed or evicted pod."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return str(response.read().decode())

    def rss_mb(self) -> float:
        """Resident memory of the operator process (VmRSS)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def apply_crd(kubectl: Path, kubeconfig: Path, crd_file: Path, timeout: float = 60.0) -> None:
    """`kubectl apply` the TarotRun CRD and wait until the API server serves it (Established)."""
    base = [str(kubectl), "--kubeconfig", str(kubeconfig)]
    subprocess.run([*base, "apply", "--server-side", "--force-conflicts", "-f", str(crd_file)], check=True,
                   capture_output=True)  # fmt: skip
    query = '{.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [*base, "get", "crd", "tarotruns.tarot.dev", "-o", f"jsonpath={query}"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "True":
            return
        time.sleep(0.2)
    raise RuntimeError(f"the CRD in {crd_file} was not established after {timeout:.0f} s")
