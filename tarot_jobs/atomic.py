"""Files and directories that are either complete or absent, never half-written.

A directory is written into a hidden staging directory beside its final name,
gets a marker file last, and is renamed into place (a rename within one
filesystem is atomic); readers trust only directories that carry the marker.
A JSON file goes through a temporary file and `os.replace`.

Replacing an existing directory takes two renames (old copy aside, new copy in). The old copy is set
aside under REPLACED_PREFIX, not STAGING_PREFIX, so that cleaners of staging leftovers never delete it:
at every instant a complete copy exists outside the staging names. A process killed between the two
renames leaves the target missing and its old copy aside; `recover` puts the old copy back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMPLETE_MARKER = "tarot-complete.json"
STAGING_PREFIX = ".staging-"
REPLACED_PREFIX = ".replaced-"


def staging_dir(parent: Path, name: str) -> Path:
    """A fresh hidden directory beside the final `name`, for writing it before the rename."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{STAGING_PREFIX}{name}-"))


def publish(staged: Path, target: Path, marker: dict[str, Any]) -> None:
    """Mark `staged` complete and rename it to `target` (replacing an older one of that name)."""
    (staged / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))
    _fsync_tree(staged)
    replaced = _replaced_name(target)
    if target.exists():
        # Only an earlier complete copy can be here; move it aside first so no reader sees a mix.
        shutil.rmtree(replaced, ignore_errors=True)  # a leftover of an earlier, finished replacement
        target.rename(replaced)
        try:
            staged.rename(target)
        except BaseException:
            replaced.rename(target)  # the complete old copy goes back where readers look
            raise
    else:
        staged.rename(target)
    _fsync_dir(target.parent)
    shutil.rmtree(replaced, ignore_errors=True)


def recover(parent: Path) -> list[Path]:
    """Finish replacements a killed process left half done in `parent`: an old copy set aside whose
    target is missing goes back to its name (returned); one whose target exists is deleted."""
    restored: list[Path] = []
    if not parent.is_dir():
        return restored
    for aside in sorted(parent.iterdir()):
        if not (aside.name.startswith(REPLACED_PREFIX) and aside.is_dir()):
            continue
        target = parent / aside.name.removeprefix(REPLACED_PREFIX)
        if target.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.rename(target)
            restored.append(target)
    if restored:
        _fsync_dir(parent)
    return restored


def _replaced_name(target: Path) -> Path:
    return target.with_name(f"{REPLACED_PREFIX}{target.name}")


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
