"""Request and response bodies: pydantic at the edge, strict (no silent coercion)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..domain.models import Attempt, Endpoint, Store
from ..domain.timefmt import rfc3339


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StoreCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    plan: str = Field(min_length=1, max_length=64)


class StoreUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    plan: str | None = Field(default=None, min_length=1, max_length=64)


class StoreOut(BaseModel):
    id: str
    name: str
    plan: str
    created_at: str
    updated_at: str
    api_key: str | None = Field(
        default=None,
        description="Only when created or rotated",
        exclude_if=lambda v: v is None,  # absent, not null, everywhere else
    )

    @classmethod
    def of(cls, s: Store, api_key: str | None = None) -> StoreOut:
        return cls(
            id=s.id,
            name=s.name,
            plan=s.plan,
            created_at=rfc3339(s.created_at),
            updated_at=rfc3339(s.updated_at),
            api_key=api_key,
        )


class EventCreate(Strict):
    type: str = Field(max_length=128)
    data: Any = Field(description="Validated against the event type's JSON Schema")


class EventOut(BaseModel):
    id: str
    type: str
    created: str
    data: Any


class EventTypeOut(BaseModel):
    name: str
    description: str
    schema_: dict[str, Any] = Field(alias="schema")
    example: dict[str, Any]

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class EventTypeList(BaseModel):
    data: list[EventTypeOut]


class DashboardLinkOut(BaseModel):
    url: str
    expires_at: str


class EndpointCreate(Strict):
    url: str = Field(max_length=2048)
    events: list[str] = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)
    format: str = "standard"
    headers: dict[str, str] | None = None


class EndpointUpdate(Strict):
    url: str | None = Field(default=None, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    format: str | None = None
    headers: dict[str, str] | None = None
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str
    events: list[str]
    format: str
    header_names: list[str]
    enabled: bool
    disabled_reason: Literal["manual", "consecutive_failures", "gone"] | None
    consecutive_failures: int
    last_triggered_at: str | None
    created_at: str
    updated_at: str
    secret: str | None = Field(
        default=None, description="Only when created", exclude_if=lambda v: v is None
    )

    @classmethod
    def of(cls, e: Endpoint, secret: str | None = None) -> EndpointOut:
        return cls(
            id=e.id,
            url=e.url,
            description=e.description,
            events=list(e.events),
            format=e.format,
            header_names=list(e.header_names),
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            consecutive_failures=e.consecutive_failures,
            last_triggered_at=(
                rfc3339(e.last_triggered_at, millis=True) if e.last_triggered_at else None
            ),
            created_at=rfc3339(e.created_at),
            updated_at=rfc3339(e.updated_at),
            secret=secret,
        )


class EndpointList(BaseModel):
    data: list[EndpointOut]
    has_more: bool


class SecretOut(BaseModel):
    secret: str


class AttemptOut(BaseModel):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    trigger: Literal["scheduled", "manual"]
    status: Literal["succeeded", "failed"]
    http_status: int | None
    response_time_ms: int
    error: str | None
    response_body: str
    attempted_at: str

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(
            id=a.id,
            endpoint_id=a.endpoint_id,
            event_id=a.event_id,
            event_type=a.event_type,
            attempt=a.attempt,
            trigger=a.trigger,
            status=a.status,
            http_status=a.http_status,
            response_time_ms=a.response_time_ms,
            error=a.error,
            response_body=a.response_body.decode("utf-8", errors="replace"),
            attempted_at=rfc3339(a.attempted_at, millis=True),
        )


class AttemptList(BaseModel):
    data: list[AttemptOut]
    has_more: bool


class TestSend(Strict):
    type: str = Field(max_length=128)


class Accepted(BaseModel):
    status: Literal["queued"] = "queued"
    event_id: str | None = None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class RecoverRequest(Strict):
    since: str = Field(
        max_length=64, description="RFC 3339 time; events since then are re-sent if missed"
    )


class RecoverOut(BaseModel):
    status: Literal["queued"] = "queued"
    queued: int = Field(description="How many events were queued again")
