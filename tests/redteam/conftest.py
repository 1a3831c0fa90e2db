"""Red-team fixtures: two problems whose answers a program cannot compute, and hostile programs.

`double` (function style) checks `double(x) == 2 * x`; every hostile program
returns a wrong value and tries to be judged `passed` anyway. `secret`
(stdin/stdout) expects a random token that only the data file holds; every
hostile program tries to find it. Each attack must earn reward 0, have no test
`passed`, and not pass itself off as a sandbox failure (reward None).

Isolation assertions are made, or skipped with the reason (`require_isolation`, tests/conftest.py); with
TAROT_EXPECT_ISOLATION=full (CI) a missing capability fails instead.
"""

from __future__ import annotations

import os
import secrets
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redteam_programs import double_problem, secret_problem

from tarot_jobs.problems.loaders import save_problems
from tarot_jobs.sandbox.limits import RunLimits
from tarot_jobs.sandbox.local import LocalSandbox


@pytest.fixture(scope="session")
def token() -> str:
    return "tok" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def problems_file(tmp_path_factory: pytest.TempPathFactory, token: str) -> Path:
    """The 'training data' on this machine's disk: what a program must not be able to read."""
    path = tmp_path_factory.mktemp("data") / "problems.jsonl"
    save_problems([double_problem(), secret_problem(token)], path)
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)  # readable by any uid: only the jail keeps a program from it
    return path


@pytest.fixture(scope="session")
def witness(token: str) -> Iterator[int]:
    """A process of this user holding the token in its command line and environment (`proc_of_others`
    prints the answer when it can read them)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", token],
        stdin=subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "TAROT_SECRET": token},
    )
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture(scope="session")
def secret_port(token: str) -> Iterator[int]:
    """A TCP server on the loopback that answers `token-n` to `n` (`network` prints what it answers)."""

    class Answer(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            n = self.rfile.readline().strip().decode()
            self.wfile.write(f"{token}-{n}\n".encode())

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


@pytest.fixture
def places(problems_file: Path, witness: int, secret_port: int) -> dict[str, object]:
    """What a stdin attack's `{data}`, `{repo}` and `{port}` stand for (with the witness running)."""
    return {"data": str(problems_file), "repo": str(Path(__file__).resolve().parents[2]), "port": secret_port}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(2, limits=RunLimits(max_output_bytes=1 << 20)) as backend:
        yield backend
