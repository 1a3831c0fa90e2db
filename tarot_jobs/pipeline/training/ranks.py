"""The processes of one phase: which one writes, what they pool, and the proof that they stayed one.

A phase trained by N processes (torchrun: `resources.processesPerNode` x `resources.nodes`) is ONE
training: each process generates and scores its share of the global batch, DDP averages the gradients,
so every process holds the same weights after every optimizer step. The main process (global rank 0)
writes every file of the phase once (steps, completions, checkpoints' shared files, final/, phase.json);
the others only compute. What a record counts (sandbox verdicts, tests scored, completions) is pooled
from all processes first, so the record describes the whole step, not rank 0's share.

Imported only by the training stage (it pulls in torch).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world_size() -> int:
    """Processes of this phase (torchrun and accelerate set WORLD_SIZE; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Global rank 0, the process that writes the phase's files (before and after torch.distributed)."""
    return os.environ.get("RANK", "0") == "0"


def is_local_main_process() -> bool:
    """Local rank 0: the first process on its node (of its pod)."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def pooled(value: T) -> list[T]:
    """`value` of every process, in rank order (a collective: every process must call it)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Wait until every process of the phase gets here (nothing to wait for in one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def weights_digest(model: Any) -> str:
    """SHA-256 of the trainable weights, by parameter name: equal on every process of one training."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
