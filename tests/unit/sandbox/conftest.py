"""Isolation assertions are made, or skipped with the reason; TAROT_EXPECT_ISOLATION=full makes them fail."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.pool import isolation_features

EXPECT_ISOLATION = "TAROT_EXPECT_ISOLATION"


@pytest.fixture
def require_isolation() -> Callable[..., None]:
    """`require_isolation(sandbox, "mnt", "own-uid")`: skip (reason printed by -ra) when the helpers lack
    one of these, or fail when CI says the full jail is expected (TAROT_EXPECT_ISOLATION=full)."""

    def require(sandbox: LocalSandbox, *features: str) -> None:
        missing = sorted(set(features) - isolation_features(sandbox.capabilities))
        if not missing:
            return
        message = f"the sandbox lacks {', '.join(missing)} here (isolation: {sandbox.capabilities})"
        if os.environ.get(EXPECT_ISOLATION) == "full":
            pytest.fail(f"{message}; {EXPECT_ISOLATION}=full requires it")
        pytest.skip(message)

    return require
