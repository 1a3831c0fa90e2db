"""Process-wide torch and transformers settings every model-loading stage applies first."""

from __future__ import annotations

import os

THREADS_ENV = "TAROT_TORCH_THREADS"


def prepare_runtime(tiny: bool) -> None:
    """Quiet transformers' per-file progress bars; set torch's thread count.

    One intra-op thread for the tiny model on CPU (or what TAROT_TORCH_THREADS says).

    The tiny model's matrices are too small to split across cores, and the
    OpenMP workers then spin against the sandbox's helpers: on the 2-core
    machine a training step ran about ten times slower with the default.
    """
    import torch
    from transformers.utils import logging as transformers_logging

    # Our stages show their own progress; "Loading weights" bars per file only clutter it.
    transformers_logging.disable_progress_bar()
    wanted = os.environ.get(THREADS_ENV)
    if wanted:
        torch.set_num_threads(int(wanted))
    elif tiny and not torch.cuda.is_available():
        torch.set_num_threads(1)
