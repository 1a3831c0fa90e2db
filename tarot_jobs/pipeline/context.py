"""What every stage needs before it starts: the sandbox, the run's problems, the base model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tarot_jobs.pipeline.model.loading import ResolvedModel, resolve_base_model
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.pipeline.sandbox_usage import CountingSandbox
from tarot_jobs.pipeline.stages.data import RunData, prepare_data, read_data
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec


@contextmanager
def open_sandbox(spec: TarotRunSpec) -> Iterator[CountingSandbox]:
    """The spec's sandbox service, or local helpers (stopped on exit), counting the tests it scores."""
    from tarot_jobs.sandbox.client import backend_for

    backend = backend_for(spec.sandbox.url, spec.sandbox.workers)
    try:
        yield CountingSandbox(backend)
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def stage_data(
    spec: TarotRunSpec, data_dir: Path | None, sandbox: SandboxBackend, reporter: Reporter
) -> RunData:
    """The problems a data stage wrote to `data_dir`, or (without one) the spec's, loaded and checked now."""
    if data_dir is not None:
        return read_data(data_dir)
    return prepare_data(spec, sandbox, reporter.log)


def base_model(spec: TarotRunSpec, data: RunData, model_cache: Path, reporter: Reporter) -> ResolvedModel:
    """The run's base model as a local directory (the tiny preset is built from the training problems)."""
    if spec.model.name == "tiny":
        reporter.log(f"tiny model: cache {model_cache}")
    return resolve_base_model(spec.model, model_cache, data.train, progress=reporter.log)
