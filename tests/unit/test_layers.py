"""hack/check_layers.py: the tree's imports run down the layers, and an upward or sideways import fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from check_layers import main, violations

REPO = Path(__file__).resolve().parents[2]


def test_the_tree_imports_down_the_layers() -> None:
    assert violations(REPO) == []
    assert main([str(REPO)]) == 0


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # a lazy import up (lifecycle → cli) fails; down (spec → curriculum, operator → spec) passes
            {
                "tarot_jobs/lifecycle/local.py": "def f():\n    from tarot_jobs.cli.output import X\n",
                "tarot_jobs/spec/model.py": "from tarot_jobs.curriculum import policy\n",
                "operator/tarot_operator/reconcile.py": "from .names import n\nimport tarot_jobs.spec\n",
            },
            ["tarot_jobs/lifecycle/local.py:2: tarot_jobs.lifecycle imports tarot_jobs.cli (up the layers)"],
        ),
        (  # a package cycle fails on its upward side; two packages of one layer may not import each other
            {
                "tarot_jobs/spec/model.py": "from tarot_jobs.curriculum.policy import P\n",
                "tarot_jobs/curriculum/s.py": "from tarot_jobs.spec.model import S\n",
                "tarot_jobs/sandbox/p.py": "from tarot_jobs.atomic import write\n",
            },
            [
                "tarot_jobs/curriculum/s.py:1: tarot_jobs.curriculum imports tarot_jobs.spec (up the layers)",
                "tarot_jobs/sandbox/p.py:1: tarot_jobs.sandbox imports tarot_jobs.atomic (across the layers)",
            ],
        ),
    ],
)
def test_an_import_up_or_across_the_layers_fails(
    files: dict[str, str], expected: list[str], tmp_path: Path
) -> None:
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    assert violations(tmp_path) == expected
    assert main([str(tmp_path)]) == 1
