"""Times: stored as integer milliseconds since the epoch, shown as RFC 3339 UTC with a Z."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int, *, millis: bool = False) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 time (a zone is required) to epoch milliseconds."""
    value = text.strip()
    if value.endswith(("z", "Z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("time zone required (e.g. 2026-01-04T12:00:00Z)")
    return int(dt.timestamp() * 1000)
