"""Curriculum policies as data (policy) and the portfolio of named ones; choosing one for a run is
tarot_jobs/pipeline/selection.py (it reads the spec, which is built on these)."""
