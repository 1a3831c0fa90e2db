"""Training checkpoints: which `checkpoint-N` directories are complete, and clearing leftovers.

transformers writes `checkpoint-N` in place, file after file, so a process
killed mid-save leaves a directory that looks like a checkpoint but lacks its
optimizer or trainer state, and `--resume` would pick it. Every checkpoint is
published through tarot_jobs.atomic (staging directory, marker, rename), and
resuming only considers directories that carry the marker.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tarot_jobs.atomic import STAGING_PREFIX, is_complete

CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")

# The files a resumable transformers checkpoint must hold besides the weights.
REQUIRED_STATE_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def checkpoint_step(directory: Path) -> int | None:
    match = _CHECKPOINT_NAME.match(directory.name)
    return int(match.group(1)) if match else None


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The complete `checkpoint-N` directories of `run_dir`, oldest (lowest N) first."""
    if not run_dir.is_dir():
        return []
    found = [
        (step, path)
        for path in run_dir.iterdir()
        if path.is_dir() and (step := checkpoint_step(path)) is not None and is_complete(path)
    ]
    return [path for _, path in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None (incomplete ones are never chosen)."""
    checkpoints = complete_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete staging directories and unmarked checkpoints a killed process left behind."""
    removed: list[Path] = []
    if not run_dir.is_dir():
        return removed
    for path in run_dir.iterdir():
        leftover = path.name.startswith(STAGING_PREFIX) or (
            checkpoint_step(path) is not None and not is_complete(path)
        )
        if leftover and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep only the newest `keep` complete checkpoints."""
    for path in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)
