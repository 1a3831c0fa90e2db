"""Leader election on a Lease: one holder, a standby takes over only after the lease lapses as it observed it.

A fake API holds the Lease with a resourceVersion (a replace with an old one is a 409, as on the API
server); each candidate has its own clock, moved by hand.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from tarot_operator.kube import ApiError, Kube
from tarot_operator.leader import LeaderElector, LeaseSettings

PATH = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/tarot"


class LeaseApi:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ApiError(503, "unavailable")

    async def get(self, path: str) -> dict[str, Any]:
        self._check()
        if self.lease is None:
            raise ApiError(404, "NotFound")
        return copy.deepcopy(self.lease)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise ApiError(409, "AlreadyExists")
        return self._store(body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def candidate(api: LeaseApi, identity: str, clock: Clock) -> LeaderElector:
    settings = LeaseSettings("ops", "tarot", identity, lease_duration=15, renew_deadline=10, retry=2)
    return LeaderElector(cast(Kube, api), settings, clock)


async def test_one_holder_and_a_takeover_after_the_observed_lease() -> None:
    api, clock_a, clock_b = LeaseApi(), Clock(), Clock()
    a, b = candidate(api, "a", clock_a), candidate(api, "b", clock_b)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    for _ in range(10):  # a renews, b keeps seeing a fresh record: never expires
        clock_a.now += 2
        clock_b.now += 2
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    # a dies: its record stops changing; b takes over once 15 s passed since it last saw it change.
    clock_b.now += 14
    assert not await b.try_acquire_or_renew()
    clock_b.now += 2
    assert await b.try_acquire_or_renew()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1
    # a, back (a paused process), cannot renew: the record is b's now, and fresh.
    clock_a.now += 30
    assert not await a.try_acquire_or_renew()


async def test_a_stale_write_loses() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = candidate(api, "a", clock), candidate(api, "b", clock)
    assert await a.try_acquire_or_renew()
    clock.now += 100
    assert not await b.try_acquire_or_renew()  # first sight of the record: b starts its own count
    lease = copy.deepcopy(api.lease)
    clock.now += 20
    assert await b.try_acquire_or_renew()
    assert lease is not None
    with pytest.raises(ApiError):  # a replace based on the older read is refused
        await api.replace(PATH, lease)


async def test_release_hands_over_at_the_next_retry() -> None:
    api, clock_a, clock_b = LeaseApi(), Clock(), Clock()
    a, b = candidate(api, "a", clock_a), candidate(api, "b", clock_b)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert api.lease is not None and api.lease["spec"]["holderIdentity"] is None
    assert await b.try_acquire_or_renew()


async def test_the_leader_gives_up_when_it_cannot_renew(monkeypatch: pytest.MonkeyPatch) -> None:
    api, clock = LeaseApi(), Clock()
    a = candidate(api, "a", clock)
    assert await a.try_acquire_or_renew()
    api.down = True
    lost: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr("tarot_operator.leader.asyncio.sleep", fake_sleep)
    await a.keep(lambda: lost.append(clock.now))
    assert lost and lost[0] - 1000.0 <= 12.0  # within renew deadline + one retry: before 15 s
    assert not a.leading


def test_settings_scale_with_the_lease() -> None:
    s = LeaseSettings.parse("ops/tarot", 6.0, identity="x")
    assert (s.namespace, s.name, s.identity) == ("ops", "tarot", "x")
    assert s.retry < s.renew_deadline < s.lease_duration == 6.0
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        LeaseSettings.parse("tarot")
