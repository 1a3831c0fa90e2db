"""Limits the executor applies to every run besides the per-request time and memory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunLimits:
    """Per-run limits that are a property of the sandbox, not of the request.

    `max_output_bytes` bounds stdout+stderr read from a run (beyond it the run is
    killed: `output_limit`); `text_cap_chars` bounds the stdout/stderr kept in a
    result (comparison always sees the whole output).
    """

    max_output_bytes: int = 16 << 20
    text_cap_chars: int = 4096
    max_processes: int = 32
    max_open_files: int = 64
    max_file_bytes: int = 16 << 20
