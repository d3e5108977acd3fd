"""Operations: fairness under a stalled endpoint, /metrics, readiness."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support import dbpeek
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
    # The stalled endpoint is taking slots now. Until it has answered once it gets 4 in
    # flight per worker, and once those hang its backlog is parked for 3 x the timeout, so
    # 4 is all that is sure to arrive before the healthy events are published.
    receiver.wait_for(4, "/stalled")
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


def test_an_endpoint_backlog_drains_beyond_its_in_flight_cap_without_waiting_for_a_poll(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    """One endpoint, 120 queued deliveries, at most 4 in flight, and a poll interval of 60 s:
    each finished attempt frees a slot that is refilled at once, so the backlog drains in
    moments rather than 4 deliveries per poll (which would take half an hour here)."""
    svc = make_service(worker_per_endpoint_limit="4", worker_poll_interval="60")
    svc.start("api")
    store_id, key = svc.create_store()
    svc.create_endpoint(key, receiver.url("/one"))
    for _ in range(120):
        assert svc.publish(store_id).status_code == 202
    svc.spawn("worker")  # the whole backlog is due when it starts: no publish wakes it again
    got = receiver.wait_for(120, "/one", timeout=30)
    assert len({r.headers["webhook-id"] for r in got}) == 120


def test_a_backlog_over_the_endpoints_caps_drains_without_an_idle_wait(
    make_service: Callable[..., Service], receiver: Receiver, db_kind: str
) -> None:
    """600 deliveries to 10 endpoints at most 8 in flight each, due at once when the workers
    start, and no publish after that to wake them. Claims are bounded by each endpoint's room,
    counted before the claim's round trips; slots that free during those round trips must lead
    to another claim, not to the idle wait (5 s on PostgreSQL, the 60 s poll on SQLite here),
    which the burst's last rows waited out before: its first and last receipts were 5 s apart,
    not a fraction of a second."""
    svc = make_service(worker_per_endpoint_limit="8", worker_poll_interval="60")
    svc.start("api")
    store_id, key = svc.create_store()
    paths = [f"/ep{i}" for i in range(10)]
    for p in paths:
        svc.create_endpoint(key, receiver.url(p))
    for _ in range(60):
        assert svc.publish(store_id).status_code == 202
    for _ in range(2 if db_kind == "postgresql" else 1):
        svc.spawn("worker")
    wait_until(lambda: sum(len(receiver.received(p)) for p in paths) >= 600, 90, "600 deliveries")
    times = sorted(r.at for p in paths for r in receiver.received(p))
    assert times[-1] - times[0] < 4.0, f"the backlog took {times[-1] - times[0]:.1f} s"


def test_an_endpoint_gets_few_attempts_in_flight_until_one_succeeds(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    """An endpoint that has not answered yet, or whose latest attempt failed, has at most 4
    attempts in flight, from its very first ones (a receiver that stalls from the start costs
    4 slots and connections, not the per-endpoint cap of 32); a success lifts the cap."""
    svc = make_service(delivery_timeout="1.5", retry_delays="", disable_after="10000")
    svc.start()
    store_id, key = svc.create_store()
    script = receiver.script("/flaky", delay=30)
    svc.create_endpoint(key, receiver.url("/flaky"))
    for _ in range(200):
        assert svc.publish(store_id).status_code == 202
    # Three waves: before any attempt has answered, and after they failed. Every attempt
    # lasts the whole 1.5 s timeout, so arrivals within 1.2 s were in flight together.
    arrivals = sorted(r.at for r in receiver.wait_for(12, "/flaky", timeout=30))
    most = max(sum(1 for t in arrivals if a <= t < a + 1.2) for a in arrivals)
    assert most <= 4, f"{most} attempts in flight at once to an endpoint that never answered"
    # The receiver recovers: once an attempt succeeds, the backlog goes out at full width.
    script.delay = 0.2
    n = len(receiver.received("/flaky"))
    burst = receiver.wait_for(n + 40, "/flaky", timeout=60)[n:]
    fast = sorted(r.at for r in burst[-30:])
    widest = max(sum(1 for t in fast if a <= t < a + 0.15) for a in fast)
    assert widest > 4, f"the cap was not lifted after a success ({widest} at once)"


def test_a_stalled_endpoints_backlog_is_parked_and_delivered_once_it_answers(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    """An endpoint that times out and stays at its failing cap has its due backlog moved
    3 x DELIVERY_TIMEOUT ahead (so claims for other endpoints do not step over it); when the
    receiver answers again, every one of those deliveries arrives, once."""
    timeout = 1.0
    svc = make_service(delivery_timeout=str(timeout), retry_delays="", disable_after="10000")
    svc.start()
    db_url = svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"]
    store_id, key = svc.create_store()
    script = receiver.script("/stuck", delay=30)
    endpoint_id = svc.create_endpoint(key, receiver.url("/stuck"), ["seller.registered"])["id"]
    svc.create_endpoint(key, receiver.url("/fine"), ["order.created"])
    events = [svc.publish(store_id, "seller.registered").json()["id"] for _ in range(150)]

    def parked() -> int:
        now_ms = int(time.time() * 1000)
        return int(
            dbpeek.scalar(
                db_url,
                "SELECT count(*) FROM deliveries WHERE endpoint_id = :ep"
                " AND lease_token IS NULL AND available_at > :soon",
                ep=endpoint_id,
                soon=now_ms + int(timeout * 1000),  # beyond any retry or lease of this test
            )
        )

    # Most of the backlog is parked at once (the first wave and a few attempts since are not;
    # parked rows that come due again are parked again at the next claim).
    wait_until(lambda: parked() >= 80, 30, "the stalled endpoint's backlog parked")
    # Another endpoint is served meanwhile.
    for _ in range(5):
        assert svc.publish(store_id, "order.created").status_code == 202
    receiver.wait_for(5, "/fine", timeout=10)
    # The receiver answers again: everything parked goes out (within 3 x the timeout).
    script.delay = 0
    wait_until(
        lambda: {r.headers["webhook-id"] for r in receiver.received("/stuck")} >= set(events),
        60,
        "every parked delivery, once the receiver answers",
    )
    wait_until(lambda: parked() == 0, 30, "nothing left parked")


def test_a_slow_endpoints_parked_backlog_is_due_at_once_when_it_first_answers(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    """A new endpoint whose first answers take 4 s sits at its narrow cap (4 in flight) for
    longer than 2 s while another endpoint is being served, so its backlog is parked for
    3 x DELIVERY_TIMEOUT (30 s here). Its first success ends that: the parked deliveries go
    out at once, not 30 s later."""
    svc = make_service(delivery_timeout="10")
    svc.start()
    store_id, key = svc.create_store()
    script = receiver.script("/slow", delay=4)
    svc.create_endpoint(key, receiver.url("/slow"), ["seller.registered"])
    svc.create_endpoint(key, receiver.url("/fine"), ["order.created"])
    events = {svc.publish(store_id, "seller.registered").json()["id"] for _ in range(60)}
    receiver.wait_for(4, "/slow", timeout=10)

    def parked_while_serving_another() -> bool:
        assert svc.publish(store_id, "order.created").status_code == 202  # claims go on
        return "stalled endpoint: queued deliveries wait" in svc.logs()

    wait_until(parked_while_serving_another, 10, "the slow endpoint's backlog parked", interval=0.1)
    script.delay = 0  # the first four still take their 4 s; then it is fast
    wait_until(  # parked, they would wait until ~30 s after the parking
        lambda: {r.headers["webhook-id"] for r in receiver.received("/slow")} >= events,
        20,
        "the parked backlog, once the endpoint has answered",
    )


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


def _scrape(svc: Service) -> str:
    r = svc.http.get(svc.base_url + "/metrics")
    assert r.status_code == 200, r.text
    return r.text


DISABLED_SERIES = "prometora_webhooks_endpoints_disabled_total"


def test_metrics_count_an_auto_disable_by_reason(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = make_service(disable_after="2", retry_delays="")
    svc.start()
    store_id, key = svc.create_store()
    receiver.script("/down", statuses=[500])
    down = svc.create_endpoint(key, receiver.url("/down"))
    before = _scrape(svc)
    reasons = ('{reason="consecutive_failures"}', '{reason="gone"}')
    assert [_metric(before, DISABLED_SERIES, r, default=0) for r in reasons] == [0, 0]
    for _ in range(2):
        assert svc.publish(store_id).status_code == 202
    wait_until(
        lambda: svc.endpoint(key, down["id"])["disabled_reason"] == "consecutive_failures",
        15,
        "auto-disabled",
    )
    wait_until(
        lambda: _metric(_scrape(svc), DISABLED_SERIES, reasons[0], default=0) == 1,
        10,
        "the disable counted",
        lambda: [ln for ln in _scrape(svc).splitlines() if "disabled" in ln],
    )
    after = _scrape(svc)
    assert _metric(after, DISABLED_SERIES, reasons[1], default=0) == 0
    assert (
        _metric(
            after, "prometora_webhooks_attempts_total", '{outcome="failed",trigger="scheduled"}'
        )
        == 2
    )


def test_queue_gauges_follow_a_due_backlog_until_it_drains(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    """Events published while no worker runs (an `api` process only) wait in the queue: the
    API's /metrics shows the depth and the oldest one's age; a worker drains both to 0."""
    svc = make_service()
    svc.start("api")
    store_id, key = svc.create_store()
    svc.create_endpoint(key, receiver.url("/a"))
    svc.create_endpoint(key, receiver.url("/b"))
    text = _scrape(svc)
    assert _metric(text, "prometora_webhooks_queue_depth") == 0
    assert _metric(text, "prometora_webhooks_queue_oldest_due_age_seconds") == 0
    for _ in range(5):
        assert svc.publish(store_id).status_code == 202

    def backlog() -> tuple[float, float]:
        text = _scrape(svc)
        return (
            _metric(text, "prometora_webhooks_queue_depth"),
            _metric(text, "prometora_webhooks_queue_oldest_due_age_seconds"),
        )

    assert backlog()[0] == 10  # 5 events x 2 endpoints, all due now
    wait_until(lambda: backlog()[1] >= 0.2, 10, "the oldest delivery ageing", backlog)
    first_age = backlog()[1]
    wait_until(lambda: backlog()[1] > first_age, 10, "the age growing", backlog)
    assert receiver.count() == 0

    svc.spawn("worker")
    receiver.wait_for(5, "/a")
    receiver.wait_for(5, "/b")
    wait_until(lambda: backlog() == (0, 0), 15, "the gauges back to 0", backlog)


@contextmanager
def _database_gone(db_kind: str, db_url: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """Make the service's database unusable, and put it back on exit: PostgreSQL stopped; the
    SQLite file moved away (the open connections still hold it: only the check sees it)."""
    if db_kind == "postgresql":
        pg = request.getfixturevalue("pg_server")
        pg.stop("fast")
        try:
            yield
        finally:
            pg.start()
        return
    path = Path(make_url(db_url).database or "")
    away = path.with_name(path.name + ".away")
    path.rename(away)
    try:
        yield
    finally:
        away.rename(path)


def test_readyz_and_publishes_fail_while_the_database_is_gone(
    make_service: Callable[..., Service],
    receiver: Receiver,
    db_kind: str,
    db_url: str,
    request: pytest.FixtureRequest,
) -> None:
    svc = make_service()
    svc.start()
    store_id, key = svc.create_store()
    svc.create_endpoint(key, receiver.url("/gone"))
    assert svc.http.get(svc.base_url + "/readyz").status_code == 200
    with _database_gone(db_kind, db_url, request):
        r = svc.http.get(svc.base_url + "/readyz", timeout=15)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"
        # Not accepted: a 202 here would be an event written where nothing will find it.
        refused = svc.publish(store_id, timeout=15)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "unavailable"
    wait_until(
        lambda: svc.http.get(svc.base_url + "/readyz", timeout=5).status_code == 200,
        30,
        "ready again",
    )
    accepted = svc.publish(store_id)
    assert accepted.status_code == 202, accepted.text
    receiver.wait_for(1, "/gone")
    event_ids = {json.loads(m.body)["id"] for m in receiver.received("/gone")}
    assert event_ids == {accepted.json()["id"]}


def test_logs_are_json_lines_with_attempt_ids_and_no_secrets(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = make_service(retry_delays="")
    proc = svc.start()
    store_id, key = svc.create_store()
    receiver.script("/fail", statuses=[500])
    credential = "Bearer cred-0123456789abcdef"
    fail = svc.create_endpoint(key, receiver.url("/fail"), headers={"Authorization": credential})
    ok = svc.create_endpoint(key, receiver.url("/ok"))
    event_id = svc.publish(store_id).json()["id"]
    (failed,) = svc.wait_attempts(key, fail["id"], 1)
    svc.wait_attempts(key, ok["id"], 1)
    assert failed["status"] == "failed"
    rotated = svc.request("POST", f"/v1/endpoints/{fail['id']}/secret/rotate", key)
    assert rotated.status_code == 200, rotated.text
    svc.stop_all()  # every line flushed

    lines = [ln for ln in proc.log().splitlines() if ln.strip()]
    records = []
    for ln in lines:
        try:
            records.append(json.loads(ln))
        except ValueError:
            raise AssertionError(f"log line is not JSON: {ln!r}") from None
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records), records[:5]
    about_attempts = [r for r in records if "attempt_id" in r or r["msg"].startswith("attempt")]
    assert about_attempts, f"no line about the failed attempt in {records!r}"[:3000]
    for r in about_attempts:
        assert r["event_id"] == event_id, r
        assert r["endpoint_id"] == fail["id"], r  # the success is not logged at info
        assert r["attempt_id"] == failed["id"], r
    assert failed["id"].startswith("att_")
    whole = proc.log()
    secrets_ = [fail["secret"], ok["secret"], rotated.json()["secret"], key, credential]
    for secret in secrets_:
        assert secret.startswith(("whsec_", "sk_", "Bearer"))
        tail = secret.split("_", 1)[1] if "_" in secret else secret
        assert secret not in whole
        assert tail[-24:] not in whole, "a secret's characters appear in the logs"
