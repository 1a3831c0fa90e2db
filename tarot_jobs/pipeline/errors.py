"""The error every stage raises for a problem the user can fix (bad input, missing output of a stage)."""

from __future__ import annotations


class StageError(ValueError):
    """A stage cannot run; the message names the spec field, file or option and what is wrong."""
