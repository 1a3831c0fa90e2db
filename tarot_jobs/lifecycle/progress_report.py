"""Live training progress from inside a train Job's pod: merge-patches status.curriculum.live.

The operator runs train Jobs with a per-run ServiceAccount whose Role may only get/patch
`tarotruns/status` of that one run, mounts its token explicitly, and names everything this module
needs in environment variables (below). Outside such a pod (a laptop, `tarot run`) they are unset and
reporting is a no-op. A failed report never stops training: it is logged once and retried at the
next step.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from tarot_jobs.spec.status import LiveProgress, TierValues, rfc3339

RUN_ENV = "TAROT_RUN_NAME"
NAMESPACE_ENV = "TAROT_RUN_NAMESPACE"
TOKEN_FILE_ENV = "TAROT_STATUS_TOKEN_FILE"
CA_FILE_ENV = "TAROT_STATUS_CA_FILE"
MIN_INTERVAL_S = 5.0  # at most one patch per interval (plus the phase's last step): a light API load

Clock = Callable[[], float]


def live_progress(record: Mapping[str, Any], now: datetime) -> LiveProgress:
    """status.curriculum.live from one logged training step (steplog's record)."""
    step, total = int(record["phase_step"]), int(record["phase_steps"])
    seconds = (record.get("seconds") or {}).get("step")
    eta = None if seconds is None else max(total - step, 0) * float(seconds)
    rates = record.get("tier_pass_rate") or {}
    return LiveProgress(
        phase=int(record["phase"]),
        step=step,
        total=total,
        mean_reward=record.get("reward"),
        reward_per_tier=TierValues.model_validate(rates) if rates else None,
        eta_seconds=eta,
        update_time=rfc3339(now),
    )


class ProgressReporter:
    """Patches one run's status.curriculum.live through the API server."""

    def __init__(
        self,
        server: str,
        namespace: str,
        run: str,
        token_file: str,
        ca_file: str,
        clock: Clock = time.monotonic,
    ) -> None:
        self.url = f"{server}/apis/tarot.dev/v1alpha1/namespaces/{namespace}/tarotruns/{run}/status"
        self.token_file = token_file
        self.client = httpx.Client(verify=ssl.create_default_context(cafile=ca_file), timeout=10.0)
        self.clock = clock
        self._last_sent: float | None = None
        self._warned = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> ProgressReporter | None:
        names = (RUN_ENV, NAMESPACE_ENV, TOKEN_FILE_ENV, CA_FILE_ENV, "KUBERNETES_SERVICE_HOST")
        if not all(env.get(name) for name in names):
            return None
        host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return cls(server, env[NAMESPACE_ENV], env[RUN_ENV], env[TOKEN_FILE_ENV], env[CA_FILE_ENV])

    def report(self, record: Mapping[str, Any]) -> bool:
        """Send this step unless one was sent less than MIN_INTERVAL_S ago; True when the API took it."""
        last_step = record.get("phase_step") == record.get("phase_steps")
        now = self.clock()
        if not last_step and self._last_sent is not None and now - self._last_sent < MIN_INTERVAL_S:
            return False
        live = live_progress(record, datetime.now(UTC))
        body = {
            "status": {"curriculum": {"live": live.model_dump(mode="json", by_alias=True, exclude_none=True)}}
        }
        try:
            # The token is re-read each time: the kubelet rotates projected tokens in place.
            with open(self.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
            response = self.client.patch(
                self.url,
                content=json.dumps(body),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()
        except (OSError, httpx.HTTPError) as exc:
            if not self._warned:
                print(
                    f"progress report to the run's status failed (training goes on): {exc}", file=sys.stderr
                )
                self._warned = True
            return False
        self._last_sent = now
        return True


_reporter: ProgressReporter | None = None
_resolved = False


def report_progress(record: Mapping[str, Any]) -> None:
    """The train stage's per-step hook: report when running in an operator's train pod, else nothing."""
    global _reporter, _resolved
    if not _resolved:
        _resolved = True
        try:
            _reporter = ProgressReporter.from_environment()
        except (OSError, ssl.SSLError) as exc:  # e.g. an unreadable CA file: report nothing, train on
            print(f"live progress reports are off: {exc}", file=sys.stderr)
    if _reporter is not None:
        _reporter.report(record)
