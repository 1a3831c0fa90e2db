"""The TarotRun spec: pydantic models, loading from YAML, and errors with field paths."""

from tarot_jobs.spec.model import SpecError, TarotRunManifest, TarotRunSpec, load_document, load_spec

__all__ = ["SpecError", "TarotRunManifest", "TarotRunSpec", "load_document", "load_spec"]
