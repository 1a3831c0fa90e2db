"""The errors a user fixes in their input: the one every stage raises (bad input, missing output of a
stage), the one a command raises for a bad argument, and the tuple of all of them that exits BAD_INPUT
(2) from a command and marks a failed stage as BadInput (not retried) in both executors."""

from __future__ import annotations

from tarot_jobs.curriculum.portfolio import UnknownPolicyError
from tarot_jobs.problems.errors import ProblemDataError
from tarot_jobs.spec.model import SpecError


class StageError(ValueError):
    """A stage cannot run; the message names the spec field, file or option and what is wrong."""


class BadInput(ValueError):
    """Input a command cannot use; the message names the argument, option or file."""


# The errors a user fixes in their input; any of them exits BAD_INPUT.
BAD_INPUT_ERRORS: tuple[type[Exception], ...] = (
    BadInput,
    SpecError,
    StageError,
    ProblemDataError,
    UnknownPolicyError,
)
