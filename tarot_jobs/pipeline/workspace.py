"""The layout of a run's workspace, one place for both executors: `tarot run`'s workdir
(tarot_jobs/lifecycle/local.py) and the workspace volume the operator mounts at /workspace in every stage
pod (operator/tarot_operator/jobs.py, config.py's default model cache).

    data/                 the data stage's problems (train, held-out) and their check
    probe/                the probe's capability.json
    train/phase-N/        phase N's checkpoints, phase.json and step log; final/ its final weights
    eval/before/          evaluation of the base model
    eval/after/           evaluation of the last phase's final weights
    models/               the model cache (downloaded base models), unless another is named

Paths are of the root's own kind: a `Path` on this machine, a `PurePosixPath` inside a pod.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Generic, TypeVar

P = TypeVar("P", bound=PurePath)

FINAL_DIR = "final"


def phase_dir(train_dir: P, index: int) -> P:
    """Phase `index`'s directory under a train directory (`tarot train --out`)."""
    return train_dir / f"phase-{index}"


def final_weights(train_dir: P, index: int) -> P:
    """Where phase `index` leaves its final weights."""
    return phase_dir(train_dir, index) / FINAL_DIR


class Workspace(Generic[P]):
    """The paths of one run's workspace under `root`."""

    def __init__(self, root: P) -> None:
        self.root = root
        self.data = root / "data"
        self.probe = root / "probe"
        self.train = root / "train"
        self.before = root / "eval" / "before"
        self.after = root / "eval" / "after"
        self.models = root / "models"

    def final_weights(self, phase: int) -> P:
        return final_weights(self.train, phase)
