"""At-least-once across crashes and shutdowns: a 202 is never lost.

The service is killed (SIGKILL) or stopped (SIGTERM) while deliveries are in flight, then
started again on the same database; every accepted event must reach every subscribed
endpoint. Runs on SQLite and PostgreSQL. Settings: DELIVERY_TIMEOUT=2 (an attempt cut off by
a crash is made again once its lease, DELIVERY_TIMEOUT + 15 s, has run out) and
RETRY_DELAYS=0.5,1.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx

from tests.support.delivery_helpers import Shop, event_ids
from tests.support.receiver import Receiver, wait_until
from tests.support.service import Service

pytest_plugins = ["tests.support.delivery_helpers"]

DELIVERY_TIMEOUT = 2.0
SETTINGS = {"delivery_timeout": str(DELIVERY_TIMEOUT), "retry_delays": "0.5,1"}
PATHS = ("/a", "/b")
# The receiver holds every response this long, so attempts stay in flight (well within
# DELIVERY_TIMEOUT, so they succeed when the service lives).
RESPONSE_DELAY = 0.5


def _succeeded_events(shop: Shop, endpoint_id: str) -> set[str]:
    return {a["event_id"] for a in shop.attempts(endpoint_id) if a["status"] == "succeeded"}


def _wait_all_delivered(
    shop: Shop,
    receiver: Receiver,
    endpoints: dict[str, str],
    accepted: list[str],
    timeout: float,
) -> None:
    """Every accepted event has a logged success on every endpoint (so its receiver got it)."""

    def missing() -> dict[str, list[str]]:
        out = {}
        for path, ep_id in endpoints.items():
            done = _succeeded_events(shop, ep_id)
            out[path] = [e for e in accepted if e not in done]
        return {p: m for p, m in out.items() if m}

    def duplicates() -> dict[str, int]:
        return {
            p: sum(n - 1 for n in Counter(event_ids(receiver.received(p))).values())
            for p in endpoints
        }

    try:
        wait_until(lambda: not missing(), timeout, "every accepted event on every endpoint")
    except AssertionError:
        raise AssertionError(
            f"{len(accepted)} accepted events; not delivered: {missing()}; "
            f"duplicates per endpoint: {duplicates()}"
        ) from None
    for path in endpoints:
        got = Counter(event_ids(receiver.received(path)))
        lost = [e for e in accepted if got[e] == 0]
        assert not lost, f"{path} never received {lost} (duplicates: {duplicates()})"


def _setup(
    make_service: Callable[..., Service],
    open_shop: Callable[..., Shop],
    receiver: Receiver,
) -> tuple[Service, Shop, dict[str, str]]:
    svc = make_service(**SETTINGS)
    svc.start()
    shop = open_shop(svc)
    endpoints = {}
    for path in PATHS:
        receiver.script(path, statuses=[200], delay=RESPONSE_DELAY)
        endpoints[path] = shop.endpoint(receiver.url(path))["id"]
    return svc, shop, endpoints


def test_kill_9_with_deliveries_in_flight_loses_no_accepted_event(
    make_service: Callable[..., Service], open_shop: Callable[..., Shop], receiver: Receiver
) -> None:
    svc, shop, endpoints = _setup(make_service, open_shop, receiver)

    # Publish continuously until the process dies; only 202s count as accepted.
    accepted: list[str] = []
    stop = threading.Event()

    def publisher() -> None:
        while not stop.is_set():
            try:
                r = svc.publish(shop.id)
            except httpx.HTTPError:
                return
            if r.status_code != 202:
                return
            accepted.append(r.json()["id"])

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()
    try:
        # Kill while the receiver is still holding responses (RESPONSE_DELAY) of attempts
        # that started, and while events are still being accepted.
        wait_until(
            lambda: len(accepted) >= 10 and len(receiver.received()) >= 6,
            15,
            "events accepted and deliveries in flight",
        )
        killed_at = time.monotonic()
        svc.procs[-1].kill()
    finally:
        stop.set()
        thread.join(10)
    # Requests that arrived less than RESPONSE_DELAY before the kill were still in flight.
    in_flight = [r for r in receiver.received() if r.at > killed_at - RESPONSE_DELAY]
    assert in_flight, "no delivery was in flight at the kill"
    accepted_at_kill = list(accepted)

    svc.start()  # the same database, a fresh process
    # An attempt cut off by the crash is made again within DELIVERY_TIMEOUT + 30 s.
    _wait_all_delivered(shop, receiver, endpoints, accepted_at_kill, DELIVERY_TIMEOUT + 30)


def test_sigterm_with_deliveries_in_flight_loses_nothing(
    make_service: Callable[..., Service], open_shop: Callable[..., Shop], receiver: Receiver
) -> None:
    svc, shop, endpoints = _setup(make_service, open_shop, receiver)
    # One more endpoint fails each event once: at shutdown its retries are pending
    # (RETRY_DELAYS[0] = 0.5 s after the failures).
    events = 5
    receiver.script("/flaky", statuses=[500] * events + [200])
    endpoints["/flaky"] = shop.endpoint(receiver.url("/flaky"))["id"]

    accepted = [shop.publish().json()["id"] for _ in range(events)]
    receiver.wait_for(events, "/flaky")  # the 500s come back at once
    wait_until(
        lambda: all(len(receiver.received(p)) >= 1 for p in PATHS),
        10,
        "deliveries in flight",
    )
    started = time.monotonic()
    rc = svc.procs[-1].terminate(timeout=DELIVERY_TIMEOUT + 20)
    took = time.monotonic() - started
    log = svc.procs[-1].log()
    # The exit status itself is test_sigterm_exits_with_status_0's business.
    assert rc in (0, -signal.SIGTERM), f"exit code {rc} after SIGTERM:\n{log[-3000:]}"
    assert "Traceback" not in log, log[-3000:]
    assert "Application shutdown complete" in log, log[-3000:]
    # In-flight attempts get at most DELIVERY_TIMEOUT to finish; then the process exits.
    assert took < DELIVERY_TIMEOUT + 10, f"shutdown took {took:.1f}s"

    svc.start()
    _wait_all_delivered(shop, receiver, endpoints, accepted, DELIVERY_TIMEOUT + 30)
    # The retries pending at shutdown were not lost: each event succeeded on its retry.
    flaky = shop.attempts(endpoints["/flaky"])
    assert sorted(a["attempt"] for a in flaky if a["status"] == "succeeded") == [2] * events


def test_sigterm_exits_with_status_0(make_service: Callable[..., Service]) -> None:
    svc = make_service(**SETTINGS)
    proc = svc.start()
    rc = proc.terminate(timeout=DELIVERY_TIMEOUT + 20)
    assert rc == 0, f"exit code {rc} after SIGTERM:\n{proc.log()[-3000:]}"


def test_worker_sigterm_drains_in_flight_attempts(
    make_service: Callable[..., Service], open_shop: Callable[..., Shop], receiver: Receiver
) -> None:
    """A `worker` process (the scale-out command) stopped with SIGTERM lets its in-flight
    attempts finish and logs each one before it exits 0: nothing it had sent is sent again by
    the next worker, and nothing is lost."""
    svc = make_service(**SETTINGS)
    svc.start("api")
    shop = open_shop(svc)
    receiver.script("/slow", statuses=[200], delay=1.0)
    ep = shop.endpoint(receiver.url("/slow"))["id"]
    accepted = [shop.publish().json()["id"] for _ in range(6)]
    worker = svc.spawn("worker")
    receiver.wait_for(3, "/slow", timeout=30)  # attempts in flight: each is held for 1 s
    rc = worker.terminate(timeout=DELIVERY_TIMEOUT + 20)
    log = worker.log()
    assert rc == 0, f"exit code {rc} after SIGTERM:\n{log[-3000:]}"
    assert "Traceback" not in log, log[-3000:]
    sent_before = Counter(event_ids(receiver.received("/slow")))
    logged = {a["event_id"] for a in shop.attempts(ep) if a["status"] == "succeeded"}
    # Drained: every request that reached the receiver before the exit has its success logged.
    assert set(sent_before) == logged, (sent_before, logged)
    svc.spawn("worker")
    _wait_all_delivered(shop, receiver, {"/slow": ep}, accepted, DELIVERY_TIMEOUT + 30)
    got = Counter(event_ids(receiver.received("/slow")))
    assert all(n == 1 for n in got.values()), f"sent twice after a clean stop: {got}"
