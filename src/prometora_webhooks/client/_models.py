"""What the API returns, as frozen dataclasses (times are aware UTC datetimes).

Fields the API adds later are ignored, so an older client keeps working against a newer server.
Secrets and API keys are left out of ``repr`` so that logging a result does not leak them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Json = dict[str, Any]


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    name: str
    plan: str
    created_at: datetime
    updated_at: datetime
    api_key: str | None = field(default=None, repr=False)
    """Only on creation and rotation: the store's API key (shown once)."""

    @classmethod
    def from_json(cls, d: Json) -> Store:
        return cls(
            id=d["id"],
            name=d["name"],
            plan=d["plan"],
            created_at=_time(d["created_at"]),
            updated_at=_time(d["updated_at"]),
            api_key=d.get("api_key"),
        )


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    created: datetime
    data: Any
    replayed: bool = False
    """True when an ``Idempotency-Key`` matched an earlier publish: this is that first event."""

    @classmethod
    def from_json(cls, d: Json, replayed: bool = False) -> Event:
        return cls(
            id=d["id"],
            type=d["type"],
            created=_time(d["created"]),
            data=d["data"],
            replayed=replayed,
        )


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    description: str
    schema: Json
    example: Json

    @classmethod
    def from_json(cls, d: Json) -> EventType:
        return cls(
            name=d["name"], description=d["description"], schema=d["schema"], example=d["example"]
        )


DisabledReason = Literal["manual", "consecutive_failures", "gone"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    description: str
    events: list[str]
    format: str
    header_names: list[str]
    enabled: bool
    disabled_reason: DisabledReason | None
    consecutive_failures: int
    last_triggered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = field(default=None, repr=False)
    """Only on creation: the ``whsec_`` signing secret."""

    @classmethod
    def from_json(cls, d: Json) -> Endpoint:
        return cls(
            id=d["id"],
            url=d["url"],
            description=d.get("description", ""),
            events=list(d["events"]),
            format=d.get("format", "standard"),
            header_names=list(d.get("header_names", [])),
            enabled=d["enabled"],
            disabled_reason=d.get("disabled_reason"),
            consecutive_failures=d.get("consecutive_failures", 0),
            last_triggered_at=_opt_time(d.get("last_triggered_at")),
            created_at=_time(d["created_at"]),
            updated_at=_time(d["updated_at"]),
            secret=d.get("secret"),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as the endpoint's log shows it."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    """1 for the original, 2 for retry #1, ..."""
    trigger: Literal["scheduled", "manual"]
    status: Literal["succeeded", "failed"]
    http_status: int | None
    response_time_ms: int
    error: str | None
    response_body: str
    attempted_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def from_json(cls, d: Json) -> Attempt:
        return cls(
            id=d["id"],
            endpoint_id=d["endpoint_id"],
            event_id=d["event_id"],
            event_type=d["event_type"],
            attempt=d["attempt"],
            trigger=d["trigger"],
            status=d["status"],
            http_status=d.get("http_status"),
            response_time_ms=d.get("response_time_ms", 0),
            error=d.get("error"),
            response_body=d.get("response_body", ""),
            attempted_at=_time(d["attempted_at"]),
        )


@dataclass(frozen=True, slots=True)
class Queued:
    """A 202 for a test send or a resend: the delivery is queued."""

    event_id: str | None

    @classmethod
    def from_json(cls, d: Json) -> Queued:
        return cls(event_id=d.get("event_id"))


@dataclass(frozen=True, slots=True)
class DashboardLink:
    url: str = field(repr=False)
    expires_at: datetime

    @classmethod
    def from_json(cls, d: Json) -> DashboardLink:
        return cls(url=d["url"], expires_at=_time(d["expires_at"]))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: ``data`` and whether more follows ``next_cursor``."""

    data: list[T]
    has_more: bool
    next_cursor: str | None
    """The cursor (``starting_after``) of the next page, or None on the last page."""
