"""Checkpoints are complete or absent; resuming never picks a half-written one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tarot_jobs.atomic import COMPLETE_MARKER, is_complete, recover, write_atomically, write_json_atomically
from tarot_jobs.pipeline.training.checkpoints import (
    complete_checkpoints,
    latest_checkpoint,
    prune_checkpoints,
    remove_leftovers,
)


def _checkpoint(run_dir: Path, step: int) -> Path:
    def fill(staged: Path) -> None:
        (staged / "trainer_state.json").write_text(json.dumps({"global_step": step}))

    target = run_dir / f"checkpoint-{step}"
    write_atomically(target, fill, {"global_step": step})
    return target


def test_published_checkpoint_is_marked_and_found(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 2)
    newest = _checkpoint(tmp_path, 4)
    assert (newest / COMPLETE_MARKER).is_file()
    assert latest_checkpoint(tmp_path) == newest
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4"]


def test_unmarked_checkpoint_is_never_resumed_and_is_cleaned(tmp_path: Path) -> None:
    good = _checkpoint(tmp_path, 2)
    torn = tmp_path / "checkpoint-6"  # what an in-place writer killed mid-save leaves
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"partial")
    staging = tmp_path / ".staging-checkpoint-8"
    staging.mkdir()
    assert latest_checkpoint(tmp_path) == good
    removed = remove_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == [".staging-checkpoint-8", "checkpoint-6"]
    assert good.is_dir() and not torn.exists()


def test_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    def fill(staged: Path) -> None:
        (staged / "weights").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "final", fill, {})
    assert list(tmp_path.iterdir()) == []


def test_republish_replaces_the_old_copy(tmp_path: Path) -> None:
    write_atomically(tmp_path / "final", lambda d: (d / "v").write_text("1"), {})
    write_atomically(tmp_path / "final", lambda d: (d / "v").write_text("2"), {})
    assert (tmp_path / "final" / "v").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    for step in (1, 2, 3, 10):
        _checkpoint(tmp_path, step)
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-10"]


def test_json_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    write_json_atomically(target, {"a": 1})
    write_json_atomically(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


# Publishes version 2 of `final` over version 1 and dies (SIGKILL-like os._exit) at the given rename.
CRASH_AT_RENAME = """
import os, sys
from pathlib import Path
from tarot_jobs.atomic import write_atomically

parent, crash_at = Path(sys.argv[1]), int(sys.argv[2])
renames = 0
real_rename = Path.rename

def rename(self, target):
    global renames
    renames += 1
    if renames == crash_at:
        os._exit(9)
    return real_rename(self, target)

Path.rename = rename
write_atomically(parent / "final", lambda d: (d / "v").write_text("2"), {"version": 2})
"""


def _publish_and_crash(parent: Path, crash_at: int) -> None:
    write_atomically(parent / "final", lambda d: (d / "v").write_text("1"), {"version": 1})
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_AT_RENAME), str(parent), str(crash_at)]
    )
    assert child.returncode == 9


def test_a_crash_between_the_two_renames_never_loses_the_complete_copy(tmp_path: Path) -> None:
    """Killed after moving the old copy aside, before the new one is in place: the target is missing.
    Cleaning staging leftovers must not delete the old copy, and recovery must put it back."""
    _publish_and_crash(tmp_path, crash_at=2)
    assert not (tmp_path / "final").exists()
    remove_leftovers(tmp_path)  # what a resumed training run does first
    assert recover(tmp_path) == [tmp_path / "final"]
    assert is_complete(tmp_path / "final") and (tmp_path / "final" / "v").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_a_crash_before_the_first_rename_keeps_the_old_copy_in_place(tmp_path: Path) -> None:
    _publish_and_crash(tmp_path, crash_at=1)
    remove_leftovers(tmp_path)
    assert recover(tmp_path) == []
    assert (tmp_path / "final" / "v").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_recovery_drops_an_old_copy_whose_replacement_is_in_place(tmp_path: Path) -> None:
    write_atomically(tmp_path / "final", lambda d: (d / "v").write_text("2"), {})
    aside = tmp_path / ".replaced-final"  # a replacement killed after its second rename
    aside.mkdir()
    (aside / "v").write_text("1")
    assert recover(tmp_path) == []
    assert (tmp_path / "final" / "v").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]
