"""Errors raised while loading problems.

Two kinds, so callers can tell "the source cannot be read at all" (a missing
file, a hub that is not reachable) from "one record in it is bad" (which the
loaders can skip and report instead of raising).
"""

from __future__ import annotations


class ProblemDataError(ValueError):
    """Problems could not be loaded from a source."""


class ProblemSourceError(ProblemDataError):
    """The source itself cannot be read: missing, of an unknown format, unreachable, or not parseable."""


class ProblemFormatError(ProblemDataError):
    """One record is malformed.

    The message names where (file and 1-based line for jsonl, file and 0-based
    record index `[i]` for json/parquet/datasets), which field (a path such as
    `verification_info.test_cases[2].label`) and what is wrong, e.g.
    `data.jsonl:7: verification_info.test_cases[2].label: unknown tier 'hard' (...)`.
    """

    def __init__(self, location: str, field: str, problem: str) -> None:
        self.location = location
        self.field = field
        self.problem = problem
        super().__init__(f"{location}: {field}: {problem}" if field else f"{location}: {problem}")


class FieldError(Exception):
    """Raised by the record parsers, which do not know where the record came from.

    The loader catches it and adds the location, turning it into a ProblemFormatError.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)
