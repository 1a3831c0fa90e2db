"""Imports run down the layers only: fails (exit 1, one line per import) on an import from a higher
layer or between two packages of the same layer, so no package cycle can come back.

The layers are docs/architecture.md's table ("Layers"), top first; a package may import only packages of
the layers below its own (and itself). Imports inside functions count too: a lazy import is still a
dependency. Standard library `ast` only, so `make lint` runs it before anything is installed.

    python hack/check_layers.py [REPO]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

# Top first. Each entry is one layer; the packages of one layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tarot_jobs.cli",),  # the `tarot` command (its `operator run` starts the operator)
    ("tarot_operator",),  # the kopf operator: applies the planner's Plan on a cluster
    ("tarot_jobs.lifecycle",),  # the planner, and `tarot run`'s executor
    ("tarot_jobs.pipeline",),  # the stages' work
    ("tarot_jobs.rewards",),  # the tiered reward
    ("tarot_jobs.spec",),  # the TarotRun spec and status models
    ("tarot_jobs.curriculum",),  # curriculum policies as data
    ("tarot_jobs.problems",),  # problems and their tiered tests
    ("tarot_jobs.sandbox", "tarot_jobs.atomic"),  # the sandbox (standard library only); atomic writes
)

# Where each top-level package's source lies, relative to the repository.
SOURCES: Mapping[str, str] = {"tarot_jobs": "tarot_jobs", "tarot_operator": "operator/tarot_operator"}


def layer_of(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    """(layer index, package) of a module, or None when it is in no layer (a third-party module)."""
    for index, packages in enumerate(layers):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return index, package
    return None


def _module_name(path: Path, root: Path, top: str) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((top, *parts))


def _imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import in a file, relative ones resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from tarot_jobs import cli` imports tarot_jobs.cli
                yield node.lineno, f"{target}.{alias.name}"


def violations(
    repo: Path, layers: Sequence[Sequence[str]] = LAYERS, sources: Mapping[str, str] = SOURCES
) -> list[str]:
    """One line per import that runs up the layers or across one."""
    found: set[tuple[str, int, str]] = set()
    for top, relative in sources.items():
        root = repo / relative
        for path in sorted(root.rglob("*.py")):
            module = _module_name(path, root, top)
            own = layer_of(module, layers)
            if own is None:
                continue
            for line, imported in _imports(path, module):
                other = layer_of(imported, layers)
                if other is None or other[1] == own[1] or other[0] > own[0]:
                    continue
                where = "up" if other[0] < own[0] else "across"
                what = f"{own[1]} imports {other[1]} ({where} the layers)"
                found.add((str(path.relative_to(repo)), line, what))
    return [f"{where}:{line}: {what}" for where, line, what in sorted(found)]


def main(argv: Sequence[str]) -> int:
    repo = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    found = violations(repo)
    for line in found:
        print(line)
    if found:
        print("imports must run down the layers: see docs/architecture.md, Layers (hack/check_layers.py)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
