"""What the Webhooks page shows, built from the services' records (no I/O here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..domain.catalog import Catalog
from ..domain.models import Attempt, DisabledReason, Endpoint, Store
from ..domain.plans import has_webhooks
from ..services.dashboard import RecentAttempt

# Shown for one page view after an action (``?done=``): fixed texts, never echoed input.
NOTICES = {
    "created": "Endpoint created. Copy its signing secret now and store it securely.",
    "enabled": "Endpoint enabled. It receives new events from now on.",
    "disabled": "Endpoint disabled. It receives no events until you enable it again.",
    "deleted": "Endpoint deleted.",
    "rotated": (
        "Signing secret rotated. For the next 24 hours each request is signed with both the "
        "old and the new secret, so you can update your receiver without missing events."
    ),
    "test": "Test event queued. Watch it arrive under Recent Deliveries.",
    "resent": "Event queued for another delivery. It appears under Recent Deliveries.",
}


@dataclass(frozen=True, slots=True)
class Status:
    key: str  # active | disabled | auto | gone
    pill: str  # the short badge
    label: str  # the full sentence, with what to do in ``help``
    help: str


@dataclass(frozen=True, slots=True)
class AttemptView:
    id: str
    event_id: str
    event_type: str
    ok: bool
    badge: str  # "Success" / "Failure"
    http_status: int | None
    error: str | None
    response_time_ms: int
    retry_label: str | None  # "Retry #1", …
    manual: bool
    attempted_at: int
    request_body: str | None
    response_body: str


@dataclass(frozen=True, slots=True)
class EndpointView:
    endpoint: Endpoint
    status: Status
    attempts: list[AttemptView] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.endpoint.id


@dataclass(frozen=True, slots=True)
class FormState:
    """The Add Endpoint form as posted, and what was wrong with it."""

    url: str = ""
    description: str = ""
    events: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)


def status_of(ep: Endpoint, disable_after: int) -> Status:
    if ep.enabled:
        return Status("active", "Active", "Active", "Receiving events.")
    if ep.disabled_reason == DisabledReason.CONSECUTIVE_FAILURES.value:
        return Status(
            "auto",
            "Auto-disabled",
            f"Auto-disabled after {disable_after} consecutive failures",
            "Fix the issue with your endpoint (the failed deliveries below say what went "
            "wrong), check it with “Send test event”, then enable it again. Events published "
            "while it is disabled are not delivered.",
        )
    if ep.disabled_reason == DisabledReason.GONE.value:
        return Status(
            "gone",
            "Disabled (410 Gone)",
            "Disabled: endpoint answered 410 Gone",
            "Your endpoint asked us to stop sending. Enable it again when it should receive "
            "events.",
        )
    return Status(
        "disabled",
        "Disabled",
        "Disabled",
        "Disabled webhooks don't receive any events. Enable it to resume.",
    )


def _pretty(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def attempt_view(recent: RecentAttempt) -> AttemptView:
    a: Attempt = recent.attempt
    ok = a.status == "succeeded"
    return AttemptView(
        id=a.id,
        event_id=a.event_id,
        event_type=a.event_type,
        ok=ok,
        badge="Success" if ok else "Failure",
        http_status=a.http_status,
        error=a.error,
        response_time_ms=a.response_time_ms,
        retry_label=f"Retry #{a.attempt - 1}" if a.attempt > 1 else None,
        manual=a.trigger == "manual",
        attempted_at=a.attempted_at,
        request_body=_pretty(recent.request_body) if recent.request_body is not None else None,
        response_body=a.response_body.decode("utf-8", errors="replace"),
    )


def endpoint_views(
    endpoints: Sequence[Endpoint],
    recent: dict[str, list[RecentAttempt]],
    disable_after: int,
) -> list[EndpointView]:
    return [
        EndpointView(
            ep,
            status_of(ep, disable_after),
            [attempt_view(r) for r in recent.get(ep.id, [])],
        )
        for ep in endpoints
    ]


def _days(days: float) -> str:
    if days >= 1 and float(days).is_integer():
        return f"{int(days)} day{'s' if days != 1 else ''}"
    hours = days * 24
    if hours >= 1:
        return f"{hours:g} hours"
    return f"{hours * 60:g} minutes"


def page_context(
    *,
    store: Store,
    settings: Settings,
    catalog: Catalog,
    endpoints: list[EndpointView],
    csrf: str,
    now: int,
) -> dict[str, Any]:
    """What every rendering of the Webhooks page (and its live fragments) needs."""
    return {
        "store": store,
        "business": has_webhooks(store.plan),
        "endpoints": endpoints,
        "event_types": catalog.all(),
        "csrf": csrf,
        "now": now,
        "disable_after": settings.disable_after,
        "retry_delays": settings.retry_delays,
        "retention_text": _days(settings.log_retention_days),
        "delivery_timeout": settings.delivery_timeout,
    }
