"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

With two or more operator replicas exactly one drives the runs: the one holding the Lease. The others
wait (standby) and try every `retry` seconds; a holder's Lease is taken over once its record has not
changed for `lease_duration` seconds *as this process observed it* (the local clock measures from the
moment this process last saw the record change, so the holders' clocks need not agree). The leader
renews every `retry` seconds; if it cannot renew for `renew_deadline` seconds it must stop at once
(the caller exits the process), before another replica can take the Lease over (renew_deadline <
lease_duration). Writes are replaces with the read resourceVersion, so two candidates never both win.

kopf's own peering is not used: it needs its KopfPeering CRDs in the cluster, and it pauses lower
priorities rather than electing one replica; a Lease is built in and needs one namespaced Role.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .kube import ApiError, Kube

log = logging.getLogger(__name__)

JSON = dict[str, Any]


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0  # client-go's defaults
    renew_deadline: float = 10.0
    retry: float = 2.0

    def __post_init__(self) -> None:
        if not self.retry < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry < renew deadline < lease duration")

    @classmethod
    def parse(cls, lease: str, lease_seconds: float = 15.0, identity: str | None = None) -> LeaseSettings:
        """From NAMESPACE/NAME; the renew deadline and retry period scale with the lease (2/3, 2/15)."""
        namespace, sep, name = lease.partition("/")
        if not sep or not namespace or not name:
            raise ValueError(f"the leader election lease {lease!r} is not NAMESPACE/NAME")
        return cls(
            namespace,
            name,
            identity or default_identity(),
            lease_duration=lease_seconds,
            renew_deadline=lease_seconds * 2 / 3,
            retry=lease_seconds * 2 / 15,
        )


def default_identity() -> str:
    """The pod's name (the chart sets POD_NAME), else host and process: unique among the candidates."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _micro_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self, kube: Kube, settings: LeaseSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.leading = False
        self.standby = False  # True once this process found the Lease held by another
        self._observed: JSON | None = None  # the holder's record (spec) as last read
        self._observed_at = 0.0  # when (local clock) that record last changed
        self._renewed_at = 0.0

    @property
    def path(self) -> str:
        s = self.settings
        return f"/apis/coordination.k8s.io/v1/namespaces/{s.namespace}/leases/{s.name}"

    async def acquire(self) -> None:
        """Returns once this process holds the Lease (at once if nobody else does)."""
        while not await self.try_acquire_or_renew():
            if not self.standby:
                holder = (self._observed or {}).get("holderIdentity")
                log.info("standby: the lease %s is held by %s", self.path, holder)
            self.standby = True
            await asyncio.sleep(self.settings.retry * (1 + 0.2 * random.random()))
        self.standby = False
        log.info("leading: %s holds the lease %s", self.settings.identity, self.path)

    async def keep(self, lost: Callable[[], None]) -> None:
        """Renews every `retry` seconds; calls `lost` once no renewal succeeded for `renew_deadline`."""
        while True:
            await asyncio.sleep(self.settings.retry)
            try:
                renewed = await self.try_acquire_or_renew()
            except Exception as exc:  # the API server unreachable or refusing: retried until the deadline
                log.warning("renewing the lease %s failed: %s", self.path, exc)
                renewed = False
            if not renewed and self.clock() - self._renewed_at > self.settings.renew_deadline:
                self.leading = False
                lost()
                return

    async def release(self) -> None:
        """On a clean stop: a Lease of 1 s without holder, so a standby takes over at its next retry."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.kube.get(self.path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.settings.identity:
                return
            lease["spec"] = {
                **lease["spec"],
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "renewTime": _micro_time(datetime.now(UTC)),
            }
            await self.kube.replace(self.path, lease)
        except (ApiError, OSError) as exc:
            log.warning("releasing the lease %s failed (it expires by itself): %s", self.path, exc)

    async def try_acquire_or_renew(self) -> bool:
        now, wall = self.clock(), datetime.now(UTC)
        s = self.settings
        mine = {
            "holderIdentity": s.identity,
            "leaseDurationSeconds": round(s.lease_duration),
            "acquireTime": _micro_time(wall),
            "renewTime": _micro_time(wall),
            "leaseTransitions": 0,
        }
        try:
            lease = await self.kube.get(self.path)
        except ApiError as err:
            if err.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace},
                "spec": mine,
            }
            try:
                await self.kube.create(self.path.rsplit("/", 1)[0], body)
            except ApiError as create_err:
                if create_err.status == 409:  # another candidate created it first
                    return False
                raise
            return self._won(now)
        record = dict(lease.get("spec") or {})
        if record != self._observed:
            self._observed, self._observed_at = record, now
        holder = record.get("holderIdentity")
        duration = float(record.get("leaseDurationSeconds") or s.lease_duration)
        if holder and holder != s.identity and now - self._observed_at < duration:
            return False  # held, and renewed within the lease as far as this process has seen
        if holder == s.identity:
            mine["acquireTime"] = record.get("acquireTime") or mine["acquireTime"]
            mine["leaseTransitions"] = record.get("leaseTransitions") or 0
        else:
            mine["leaseTransitions"] = int(record.get("leaseTransitions") or 0) + 1
        lease["spec"] = mine
        try:
            updated = await self.kube.replace(self.path, lease)  # carries the read resourceVersion
        except ApiError as err:
            if err.status == 409:  # someone else wrote it since the read
                return False
            raise
        self._observed, self._observed_at = dict(updated.get("spec") or mine), now
        return self._won(now)

    def _won(self, now: float) -> bool:
        self.leading = True
        self._renewed_at = now
        return True
