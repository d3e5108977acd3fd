"""What the dashboard shows: statuses, badges and retry labels, times, CSRF tokens, escaping."""

from __future__ import annotations

from dataclasses import replace

import pytest

from prometora_webhooks.config import Settings
from prometora_webhooks.dashboard import views, web
from prometora_webhooks.domain.catalog import Catalog
from prometora_webhooks.domain.messages import FORMATS
from prometora_webhooks.domain.models import Attempt, Endpoint, Store
from prometora_webhooks.services.dashboard import DashboardSession, RecentAttempt, csrf_token
from prometora_webhooks.services.deliveries import MAX_RECOVER
from prometora_webhooks.services.events import encode_event


def endpoint(
    enabled: bool = True, reason: str | None = None, failures: int = 0, fmt: str = "standard"
) -> Endpoint:
    return Endpoint(
        "we_1", "str_1", "https://example.com/h", "", ("order.created",), fmt, (),
        enabled, reason, failures, None, 0, 0,
    )  # fmt: skip


def attempt(n: int, status: str, http: int | None, trigger: str = "scheduled") -> Attempt:
    return Attempt(
        "att_1", "we_1", "evt_1", "order.created", n, trigger, status, http, 42,
        None if status == "succeeded" else ("timeout" if http is None else f"HTTP {http}"),
        b"<b>nope</b>", 1_767_528_000_000,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("enabled", "reason", "key", "pill"),
    [
        (True, None, "active", "Active"),
        (False, "manual", "disabled", "Disabled"),
        (False, "consecutive_failures", "auto", "Auto-disabled"),
        (False, "gone", "gone", "Disabled (410 Gone)"),
    ],
)
def test_status(enabled: bool, reason: str | None, key: str, pill: str) -> None:
    status = views.status_of(endpoint(enabled, reason), disable_after=10)
    assert (status.key, status.pill) == (key, pill)
    if key == "auto":
        assert status.label == "Auto-disabled after 10 consecutive failures"
        assert "enable it again" in status.help


@pytest.mark.parametrize(
    ("n", "status", "http", "trigger", "badge", "retry", "manual"),
    [
        (1, "succeeded", 200, "scheduled", "Success", None, False),
        (2, "failed", 500, "scheduled", "Failure", "Retry #1", False),
        (3, "failed", None, "scheduled", "Failure", "Retry #2", False),
        (1, "succeeded", 204, "manual", "Success", None, True),
    ],
)
def test_attempt_view(
    n: int, status: str, http: int | None, trigger: str, badge: str, retry: str | None, manual: bool
) -> None:
    view = views.attempt_view(RecentAttempt(attempt(n, status, http, trigger), b'{"a":1}'))
    assert (view.badge, view.retry_label, view.manual, view.ok) == (
        badge,
        retry,
        manual,
        status == "succeeded",
    )
    assert view.request_body == '{\n  "a": 1\n}'
    assert view.response_body == "<b>nope</b>"  # escaped when rendered, not here


def test_purged_event_and_non_json_bodies() -> None:
    assert views.attempt_view(RecentAttempt(attempt(1, "failed", 500), None)).request_body is None
    raw = views.attempt_view(RecentAttempt(attempt(1, "failed", 500), b"\xffnot json"))
    assert raw.request_body == "\ufffdnot json"


def test_receiver_controlled_text_is_escaped() -> None:
    ev = views.EndpointView(endpoint(), views.status_of(endpoint(), 10), [
        views.attempt_view(RecentAttempt(attempt(2, "failed", 500), b"{}")),
    ])  # fmt: skip
    html = web.render(
        "_deliveries.html", {"ev": ev, "csrf": "t", "retention_text": "7 days", "now": 0}
    )
    assert "&lt;b&gt;nope&lt;/b&gt;" in html
    assert "<b>nope</b>" not in html
    assert "Retry #1" in html


@pytest.mark.parametrize(
    ("days", "text"), [(7, "7 days"), (1, "1 day"), (0.5, "12 hours"), (0.01, "14.4 minutes")]
)
def test_retention_text(days: float, text: str) -> None:
    assert views._days(days) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60, "~1 minute"), (600, "~10 minutes"), (2, "~2 seconds"), (7200, "~2 hours")],
)
def test_delay_text(seconds: float, text: str) -> None:
    assert web._delay(seconds) == text


def test_ago() -> None:
    now = 1_000_000_000
    assert web._ago(now - 3_000, now) == "just now"
    assert web._ago(now - 45_000, now) == "45 seconds ago"
    assert web._ago(now - 60_000, now) == "1 minute ago"
    assert web._ago(now - 3 * 3_600_000, now) == "3 hours ago"


def test_csrf_token_is_bound_to_the_session() -> None:
    a = DashboardSession("session-a", "str_1", 0)
    b = DashboardSession("session-b", "str_1", 0)
    assert a.csrf_token == csrf_token("session-a") != b.csrf_token
    assert a.csrf_ok(a.csrf_token)
    assert not a.csrf_ok(b.csrf_token)
    assert not a.csrf_ok("")
    assert not a.csrf_ok(None)


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [("https://hooks.example.com", True), ("http://127.0.0.1:8000", False)],
)
def test_session_cookie(public_url: str, secure: bool) -> None:
    from types import SimpleNamespace

    from starlette.responses import Response

    from prometora_webhooks.dashboard.session import set_session_cookie

    response = Response()
    rt = SimpleNamespace(public_url=public_url)
    set_session_cookie(response, rt, DashboardSession("tok", "str_1", 0))  # type: ignore[arg-type]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("prometora_dashboard=tok;")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/dashboard" in cookie
    assert "Max-Age=43200" in cookie
    assert ("Secure" in cookie) is secure


def test_format_choices_are_the_endpoint_formats() -> None:
    assert [c.key for c in views.FORMAT_CHOICES] == list(FORMATS)
    assert views.FORMAT_CHOICES[0].label == "Standard JSON (signed)"  # the default, first
    assert views.FORMAT_LABELS["slack"] == "Slack message"
    assert views.FORMAT_LABELS["discord"] == "Discord message"


def _head(ep: Endpoint) -> str:
    ev = views.EndpointView(ep, views.status_of(ep, 10))
    return web.render(
        "_endpoint_head.html",
        {"ev": ev, "csrf": "t", "now": 0, "disable_after": 10,
         "format_labels": views.FORMAT_LABELS},
    )  # fmt: skip


def test_format_tag_only_on_chat_endpoints() -> None:
    assert '<span class="tag tag-format">Slack message</span>' in _head(endpoint(fmt="slack"))
    assert "Discord message" in _head(endpoint(fmt="discord"))
    assert "tag-format" not in _head(endpoint())


def test_chat_endpoint_log_shows_the_message_sent() -> None:
    catalog = Catalog.load()
    example = catalog.get("order.created").example
    body = encode_event("evt_1", "order.created", 1_767_528_000_000, example)
    bodies = views.SentBodies(catalog, size=2)
    recent = RecentAttempt(attempt(1, "succeeded", 200), body)
    slack = views.attempt_view(recent, "slack", bodies)
    assert slack.request_body is not None
    assert '"blocks"' in slack.request_body
    assert '"data"' not in slack.request_body
    assert views.attempt_view(recent, "slack", bodies).request_body is slack.request_body  # kept
    discord = views.attempt_view(recent, "discord", bodies).request_body
    assert discord is not None
    assert '"embeds"' in discord
    standard = views.attempt_view(recent, "standard", bodies).request_body
    assert standard is not None
    assert '"data"' in standard
    # A message that cannot be rendered is shown as the event (the worker sends it so too).
    broken = RecentAttempt(replace(attempt(1, "succeeded", 200), event_id="evt_2"), b"{}")
    assert views.attempt_view(broken, "slack", bodies).request_body == "{}"
    assert (
        views.attempt_view(RecentAttempt(broken.attempt, None), "slack", bodies).request_body
        is None
    )


@pytest.mark.parametrize(
    ("days", "labels"),
    [
        (7, ["Last hour", "Last 24 hours", "Last 7 days"]),
        (30, ["Last hour", "Last 24 hours", "Last 7 days"]),
        (3, ["Last hour", "Last 24 hours", "Last 3 days"]),
        (1, ["Last hour", "Last 24 hours"]),
        (0.5, ["Last hour", "Last 12 hours"]),
        (0.01, ["Last 14.4 minutes"]),
    ],
)
def test_recover_windows_stay_within_retention(days: float, labels: list[str]) -> None:
    windows = views.recover_windows(days)
    assert [w.label for w in windows] == labels
    assert all(w.seconds <= days * 86400 for w in windows)


@pytest.mark.parametrize(("days", "default"), [(7, "day"), (3, "day"), (0.5, "retention")])
def test_recover_default_window(days: float, default: str) -> None:
    ctx = views.page_context(
        store=Store("str_1", "Shop", "business", 0, 0),
        settings=Settings(log_retention_days=days),
        catalog=Catalog.load(),
        endpoints=[],
        csrf="t",
        now=0,
    )
    assert ctx["recover_default"] == default
    assert default in [w.key for w in ctx["recover_windows"]]


@pytest.mark.parametrize(
    ("queued", "start"),
    [
        (0, "Nothing to recover."),
        (1, "1 missed event queued again. It appears under Recent Deliveries."),
        (3, "3 missed events queued again. They appear under Recent Deliveries."),
        (1234, "1,234 missed events queued again."),
    ],
)
def test_recovered_text(queued: int, start: str) -> None:
    assert views.recovered_text(queued).startswith(start)
    assert "recover again" not in views.recovered_text(queued)
    assert "recover again for the rest" in views.recovered_text(MAX_RECOVER)


@pytest.mark.parametrize("enabled", [True, False])
def test_recover_form(enabled: bool) -> None:
    ep = endpoint(enabled, None if enabled else "manual")
    html = web.render(
        "_recover.html",
        {"ev": views.EndpointView(ep, views.status_of(ep, 10)), "csrf": "tok",
         "recover_windows": views.recover_windows(7), "recover_default": "day"},
    )  # fmt: skip
    assert 'action="/dashboard/webhooks/endpoints/we_1/recover"' in html
    assert 'name="csrf_token" value="tok"' in html
    assert '<option value="day" selected>Last 24 hours</option>' in html
    assert ("Enable this endpoint first" in html) is not enabled
    assert ("disabled" in html.replace("was disabled", "")) is not enabled
