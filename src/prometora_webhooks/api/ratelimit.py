"""Per-key request rate limit (token bucket, per API process)."""

from __future__ import annotations

import math
import time

from ..domain.errors import RateLimited

MAX_KEYS = 100_000


class RateLimiter:
    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise RateLimited with the seconds to wait."""
        if self._rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            wait = math.ceil((1.0 - tokens) / self._rate)
            self._buckets[key] = (tokens, now)
            raise RateLimited(f"too many requests; retry in {wait} s", retry_after=wait)
        if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting buckets only ever lets through
        self._buckets[key] = (tokens - 1.0, now)
