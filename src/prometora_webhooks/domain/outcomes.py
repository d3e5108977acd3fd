"""What a batch of finished attempts does to the queue and to the endpoints' counters."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .retry import next_delay


@dataclass(slots=True)
class AttemptResult:
    delivery_id: int
    lease_token: str
    attempt_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    store_id: str
    attempt: int
    trigger: str
    succeeded: bool
    http_status: int | None
    response_time_ms: int
    error: str | None
    response_body: bytes
    started_at: int  # epoch ms
    retry_after: float | None = None  # seconds, from a 429/503 Retry-After

    @property
    def gone(self) -> bool:
        return self.http_status == 410


@dataclass(frozen=True, slots=True)
class CounterChange:
    endpoint_id: str
    reset: bool  # a success happened: the counter restarts at ``failures``
    failures: int  # failures after the last success (or all, without one)
    last_started_at: int


@dataclass(frozen=True, slots=True)
class Plan:
    finished: list[tuple[int, str]]  # (delivery id, lease token)
    retries: list[tuple[int, str, int, int]]  # (delivery id, token, next attempt, due at ms)
    counters: list[CounterChange]
    gone: list[str]  # endpoints that answered 410


def plan(
    results: Sequence[AttemptResult],
    delays: Sequence[float],
    now_ms: int,
    rng: random.Random | None = None,
) -> Plan:
    """Results in the order they completed → the writes that record them."""
    finished: list[tuple[int, str]] = []
    retries: list[tuple[int, str, int, int]] = []
    counters: dict[str, tuple[bool, int, int]] = {}
    gone: list[str] = []
    for r in results:
        reset, failures, started = counters.get(r.endpoint_id, (False, 0, 0))
        if r.succeeded:
            reset, failures = True, 0
        else:
            failures += 1
        counters[r.endpoint_id] = (reset, failures, max(started, r.started_at))
        if r.gone and r.endpoint_id not in gone:
            gone.append(r.endpoint_id)
        delay = None
        if not r.succeeded and not r.gone and r.trigger == "scheduled":
            delay = next_delay(delays, r.attempt, r.retry_after, rng)
        if delay is None:
            finished.append((r.delivery_id, r.lease_token))
        else:
            retries.append(
                (r.delivery_id, r.lease_token, r.attempt + 1, now_ms + int(delay * 1000))
            )
    return Plan(
        finished,
        retries,
        [CounterChange(ep, *vals) for ep, vals in counters.items()],
        gone,
    )
