"""Checkpoints and stage outputs that are either complete or absent.

transformers writes `checkpoint-N` in place, file after file, so a process
killed mid-save leaves a directory that looks like a checkpoint but lacks its
optimizer or trainer state, and `--resume` would pick it. Here every
checkpoint is written into a staging directory, gets a marker file last, and
is renamed into place (a rename within one filesystem is atomic). Resuming
only considers directories that carry the marker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "tarot-complete.json"
STAGING_PREFIX = ".staging-"
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")

# The files a resumable transformers checkpoint must hold besides the weights.
REQUIRED_STATE_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def staging_dir(parent: Path, name: str) -> Path:
    """A fresh hidden directory beside the final `name`, for writing it before the rename."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{STAGING_PREFIX}{name}-"))


def publish(staged: Path, target: Path, marker: dict[str, Any]) -> None:
    """Mark `staged` complete and rename it to `target` (replacing an older one of that name)."""
    (staged / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))
    _fsync_tree(staged)
    if target.exists():
        # Only an earlier complete copy can be here; move it aside first so no reader sees a mix.
        old = target.with_name(f"{STAGING_PREFIX}old-{target.name}")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staged.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(target)
    _fsync_dir(target.parent)


def write_atomically(target: Path, fill: Callable[[Path], None], marker: dict[str, Any]) -> None:
    """Create directory `target` by calling `fill(staging)` and publishing the staging directory."""
    staged = staging_dir(target.parent, target.name)
    try:
        fill(staged)
        publish(staged, target, marker)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def write_json_atomically(target: Path, data: Any) -> None:
    """Write a JSON file through a temporary file and a rename: never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, default=str)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_complete(directory: Path) -> bool:
    return (directory / COMPLETE_MARKER).is_file()


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


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
