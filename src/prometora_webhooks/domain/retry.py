"""The retry schedule: when the next attempt of a failed delivery is due, if at all."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC

JITTER = 0.10
RETRY_AFTER_CAP_S = 3600.0


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # int("²") fails and huge values overflow float(): anything this long is "very long".
        return float(int(text)) if len(text) <= 15 else float(10**15)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": UTC, not the machine's local time
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_s)


def next_delay(
    delays: Sequence[float],
    attempt: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the retry after failed ``attempt`` (1 = original), or None when exhausted.

    Each configured delay gets ±10 % jitter; a ``Retry-After`` (from 429/503) raises the wait to
    ``min(Retry-After, 1 h)`` when that is longer.
    """
    if attempt < 1 or attempt > len(delays):
        return None
    base = delays[attempt - 1]
    r = rng.random() if rng is not None else random.random()
    delay = base * (1.0 + JITTER * (2.0 * r - 1.0))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay
