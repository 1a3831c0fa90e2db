"""Kubernetes Events on a run (core/v1), one per planner event: what `kubectl describe tr` lists."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime

from tarot_jobs.lifecycle.types import RunEvent

from .names import API_VERSION, JSON, KIND

COMPONENT = "tarot-operator"
EVENT_MESSAGE_LIMIT = 1024  # Events are for people; the full text stays in the status conditions


def run_event(run: JSON, event: RunEvent, now: datetime | None = None) -> JSON:
    meta = run["metadata"]
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:EVENT_MESSAGE_LIMIT],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": f"tarot.dev/{COMPONENT}",
        "reportingInstance": os.environ.get("POD_NAME") or socket.gethostname(),
    }
