"""The JSON merge patch (RFC 7386) that turns one object into another: only what changed is sent."""

from __future__ import annotations

from typing import Any


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The smallest merge patch taking `old` to `new`: changed keys, removed keys as null, dicts recursed.

    Keys that `new` leaves unchanged are left out, so a concurrent writer's keys (a train Job's
    status.curriculum.live) survive unless `new` itself changes them.
    """
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif key not in old or before != value:
            patch[key] = value
    return patch
