"""The domain's records: store → endpoint; event → delivery (queue row) → attempt (log row)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


class DisabledReason(StrEnum):
    MANUAL = "manual"
    CONSECUTIVE_FAILURES = "consecutive_failures"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    name: str
    plan: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    store_id: str
    url: str
    description: str
    events: tuple[str, ...]
    format: str
    header_names: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    last_triggered_at: int | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    store_id: str
    type: str
    created_at: int
    body: bytes  # the exact JSON bytes every endpoint receives


@dataclass(frozen=True, slots=True)
class Attempt:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    trigger: str
    status: str
    http_status: int | None
    response_time_ms: int
    error: str | None
    response_body: bytes
    attempted_at: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    data: list[T]
    has_more: bool
