"""hack/check_layers.py: the tree's imports run down the layers, and an upward or sideways import fails."""

from __future__ import annotations

from pathlib import Path

from check_layers import main, violations

REPO = Path(__file__).resolve().parents[2]


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_tree_imports_down_the_layers() -> None:
    assert violations(REPO) == []
    assert main([str(REPO)]) == 0


def test_an_upward_import_fails_naming_file_line_and_layers(tmp_path: Path) -> None:
    _write(tmp_path, "tarot_jobs/lifecycle/local.py", "def f():\n    from tarot_jobs.cli.output import X\n")
    _write(tmp_path, "tarot_jobs/spec/model.py", "from tarot_jobs.curriculum import policy\n")
    _write(tmp_path, "operator/tarot_operator/reconcile.py", "from .names import n\nimport tarot_jobs.spec\n")
    assert violations(tmp_path) == [
        "tarot_jobs/lifecycle/local.py:2: tarot_jobs.lifecycle imports tarot_jobs.cli (up the layers)"
    ]
    assert main([str(tmp_path)]) == 1


def test_a_cycle_between_packages_fails_on_one_side(tmp_path: Path) -> None:
    _write(tmp_path, "tarot_jobs/spec/model.py", "from tarot_jobs.curriculum.policy import P\n")
    _write(tmp_path, "tarot_jobs/curriculum/selection.py", "from tarot_jobs.spec.model import S\n")
    _write(tmp_path, "tarot_jobs/sandbox/pool.py", "from tarot_jobs.atomic import write\n")
    assert violations(tmp_path) == [
        "tarot_jobs/curriculum/selection.py:1: tarot_jobs.curriculum imports tarot_jobs.spec (up the layers)",
        "tarot_jobs/sandbox/pool.py:1: tarot_jobs.sandbox imports tarot_jobs.atomic (sideways the layers)",
    ]
