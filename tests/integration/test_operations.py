"""Operations: fairness under a stalled endpoint, /metrics, readiness."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from tests.support.receiver import Receiver, wait_until
from tests.support.service import Service


def _metric(text: str, name: str, labels: str = "", default: float | None = None) -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    m = re.search(pattern, text, re.MULTILINE)
    if m is None and default is not None:
        return default
    assert m, f"{name}{labels} not in /metrics"
    return float(m.group(1))


def test_stalled_endpoint_backlog_does_not_delay_a_healthy_endpoint(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    """500 deliveries queued for an endpoint that never answers; a healthy endpoint's events
    still arrive within BOUND seconds of being published."""
    bound = 3.0
    svc = make_service(delivery_timeout="5", retry_delays="", disable_after="10000")
    svc.start()
    store_id, key = svc.create_store()
    receiver.script("/stalled", delay=30)
    svc.create_endpoint(key, receiver.url("/stalled"), ["seller.registered"])
    svc.create_endpoint(key, receiver.url("/healthy"), ["order.created"])
    t_start = time.monotonic()
    for _ in range(500):
        assert svc.publish(store_id, "seller.registered").status_code == 202
    t_backlog = time.monotonic() - t_start
    receiver.wait_for(5, "/stalled")  # the stalled endpoint is taking slots now
    latencies = []
    for _ in range(20):
        t0 = time.monotonic()
        ev = svc.publish(store_id, "order.created").json()
        wait_until(
            lambda ev=ev: any(
                r.headers.get("webhook-id") == ev["id"] for r in receiver.received("/healthy")
            ),
            bound + 10,
            "healthy delivery",
        )
        latencies.append(time.monotonic() - t0)
    assert max(latencies) < bound, f"healthy endpoint delayed: {sorted(latencies)[-3:]}"
    # The stalled endpoint never had more than the per-endpoint cap (32) in flight: every
    # request to it lasts the whole 5 s timeout, so arrivals within 4 s overlap in time.
    arrivals = sorted(r.at for r in receiver.received("/stalled"))
    most = max(sum(1 for t in arrivals if a <= t < a + 4.0) for a in arrivals)
    assert most <= 32, f"{most} attempts in flight at once to one endpoint"
    print(f"published backlog in {t_backlog:.1f}s; healthy latencies max {max(latencies):.2f}s")


def test_metrics_expose_named_series_that_move(service: Service, receiver: Receiver) -> None:
    store_id, key = service.create_store()
    receiver.script("/fail", statuses=[500])
    service.create_endpoint(key, receiver.url("/ok"))
    service.create_endpoint(key, receiver.url("/fail"))
    before = service.http.get(service.base_url + "/metrics").text
    for name in (
        "prometora_webhooks_attempts_total",
        "prometora_webhooks_attempt_duration_seconds_bucket",
        "prometora_webhooks_queue_depth",
        "prometora_webhooks_queue_oldest_due_age_seconds",
        "prometora_webhooks_endpoints_disabled_total",
        "prometora_webhooks_events_published_total",
    ):
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in before, name
    for _ in range(3):
        assert service.publish(store_id).status_code == 202
    receiver.wait_for(3, "/ok")
    receiver.wait_for(3, "/fail")

    def counted() -> bool:
        text = service.http.get(service.base_url + "/metrics").text
        ok = _metric(
            text, "prometora_webhooks_attempts_total", '{outcome="succeeded",trigger="scheduled"}'
        )
        bad = _metric(
            text, "prometora_webhooks_attempts_total", '{outcome="failed",trigger="scheduled"}'
        )
        return ok >= 3 and bad >= 3

    wait_until(counted, 15, "attempt counters")
    text = service.http.get(service.base_url + "/metrics").text
    assert _metric(text, "prometora_webhooks_events_published_total") == 3
    assert _metric(text, "prometora_webhooks_attempt_duration_seconds_count") >= 6
    # three failed deliveries wait for their retry: due soon, queue not empty
    assert _metric(text, "prometora_webhooks_queue_depth") >= 0


def test_readyz_fails_while_postgres_is_down(
    make_service: Callable[..., Service], db_kind: str, request: object
) -> None:
    if db_kind != "postgresql":
        return  # SQLite is a local file: it cannot be "unreachable"
    pg = request.getfixturevalue("pg_server")  # type: ignore[attr-defined]
    svc = make_service()
    svc.start()
    assert svc.http.get(svc.base_url + "/readyz").status_code == 200
    pg.stop("fast")
    try:
        r = svc.http.get(svc.base_url + "/readyz", timeout=15)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"
    finally:
        pg.start()
    wait_until(
        lambda: svc.http.get(svc.base_url + "/readyz", timeout=5).status_code == 200,
        30,
        "ready again",
    )
