"""What the Webhooks page shows, built from the services' records (no I/O here)."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..domain.catalog import Catalog
from ..domain.messages import DISCORD, FORMATS, SLACK, STANDARD, MessageRenderer
from ..domain.models import Attempt, DisabledReason, Endpoint, Store
from ..domain.plans import has_webhooks
from ..services.dashboard import RecentAttempt
from ..services.deliveries import MAX_RECOVER

log = logging.getLogger("prometora_webhooks.dashboard")

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


def recovered_text(queued: int) -> str:
    """What "Recover missed events" did (``?done=recovered&n=``)."""
    if queued <= 0:
        return (
            "Nothing to recover. Every event of this endpoint's types in that period was "
            "delivered, or is already on its way."
        )
    if queued == 1:
        return "1 missed event queued again. It appears under Recent Deliveries."
    text = f"{queued:,} missed events queued again. They appear under Recent Deliveries."
    if queued >= MAX_RECOVER:
        text += " That is the most queued at once: recover again for the rest."
    return text


RECOVER_DISABLED = (
    "This endpoint is disabled: enable it first, then use “Recover missed events”. "
    "Nothing was queued."
)


@dataclass(frozen=True, slots=True)
class FormatChoice:
    key: str  # an endpoint format (domain.messages.FORMATS)
    label: str
    description: str


# The Add Endpoint form's choices, in the order shown; the tag shows on non-standard endpoints.
FORMAT_CHOICES = (
    FormatChoice(
        STANDARD,
        "Standard JSON (signed)",
        "The full event as JSON: for your own backend, Zapier, Make or n8n.",
    ),
    FormatChoice(
        SLACK, "Slack message", "A readable message (text and blocks) for a Slack channel."
    ),
    FormatChoice(DISCORD, "Discord message", "A message with an embed for a Discord channel."),
)
FORMAT_LABELS = {c.key: c.label for c in FORMAT_CHOICES}


@dataclass(frozen=True, slots=True)
class RecoverWindow:
    key: str  # what the form posts
    label: str
    seconds: float


_RECOVER_PRESETS = (
    RecoverWindow("hour", "Last hour", 3600),
    RecoverWindow("day", "Last 24 hours", 86400),
    RecoverWindow("week", "Last 7 days", 7 * 86400),
)
RECOVER_DEFAULT = "day"  # preselected; else the longest window offered


def recover_windows(retention_days: float) -> list[RecoverWindow]:
    """How far back "Recover missed events" may reach: the presets within log retention (older
    events are purged), and all of retention when it ends between two presets."""
    limit = retention_days * 86400
    windows = [w for w in _RECOVER_PRESETS if w.seconds <= limit]
    if limit < _RECOVER_PRESETS[-1].seconds and not any(w.seconds == limit for w in windows):
        windows.append(RecoverWindow("retention", f"Last {_days(retention_days)}", limit))
    return windows


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
    format: str = STANDARD


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
            "while it is disabled are not delivered: once it is enabled, “Recover missed "
            "events” sends them.",
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
        "Disabled webhooks don't receive any events. Enable it to resume; “Recover missed "
        "events” then sends what it missed.",
    )


def _pretty(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


class SentBodies:
    """The request bodies as an endpoint received them: chat formats (Slack, Discord) are
    rendered from the stored event the way the worker renders them. Rendering takes a few
    milliseconds and the page is polled, so results are kept (an event's body never changes)."""

    def __init__(self, catalog: Catalog, size: int = 1024) -> None:
        self._renderer = MessageRenderer(catalog)
        self._size = size
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()

    def text(self, fmt: str, event_id: str, body: bytes) -> str:
        if fmt == STANDARD or fmt not in FORMATS:
            return _pretty(body)
        key = (fmt, event_id)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        try:
            sent = self._renderer.render(fmt, body)
        except Exception as exc:  # as the worker does: a template problem sends the event
            log.warning("message preview failed", extra={"format": fmt, "error": repr(exc)[:200]})
            sent = body
        text = self._cache[key] = _pretty(sent)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return text


def attempt_view(
    recent: RecentAttempt, fmt: str = STANDARD, bodies: SentBodies | None = None
) -> AttemptView:
    a: Attempt = recent.attempt
    ok = a.status == "succeeded"
    if recent.request_body is None:
        request_body = None
    elif bodies is not None:
        request_body = bodies.text(fmt, a.event_id, recent.request_body)
    else:
        request_body = _pretty(recent.request_body)
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
        request_body=request_body,
        response_body=a.response_body.decode("utf-8", errors="replace"),
    )


def endpoint_views(
    endpoints: Sequence[Endpoint],
    recent: dict[str, list[RecentAttempt]],
    disable_after: int,
    bodies: SentBodies | None = None,
) -> list[EndpointView]:
    return [
        EndpointView(
            ep,
            status_of(ep, disable_after),
            [attempt_view(r, ep.format, bodies) for r in recent.get(ep.id, [])],
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
    windows = recover_windows(settings.log_retention_days)
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
        "format_choices": FORMAT_CHOICES,
        "format_labels": FORMAT_LABELS,
        "recover_windows": windows,
        "recover_default": (
            RECOVER_DEFAULT if any(w.key == RECOVER_DEFAULT for w in windows) else windows[-1].key
        ),
        "delivery_timeout": settings.delivery_timeout,
    }
