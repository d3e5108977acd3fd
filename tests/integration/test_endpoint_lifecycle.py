"""An endpoint's life: auto-disable and re-enable, manual disable, delete, the plan gate,
test sends and resends.

Every test runs on SQLite and PostgreSQL against a real `serve` process (shared between
tests, one store per test; see tests/support/delivery_helpers.py) and a real HTTPS receiver.
Settings: RETRY_DELAYS=0.5,1, DELIVERY_TIMEOUT=2, DISABLE_AFTER=10 (the product's default),
unless a test asks the pool for others.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.api_helpers import assert_error
from tests.support.dbpeek import query
from tests.support.delivery_helpers import (
    DISABLE_AFTER,
    RETRY_DELAYS,
    ServicePool,
    Shop,
    assert_stays,
    event_ids,
    headers,
    receiver_count,
    retry_due_by,
)
from tests.support.receiver import Receiver, wait_until
from tests.support.service import Service

pytest_plugins = ["tests.support.delivery_helpers"]

FIRST_RETRY_DELAY = RETRY_DELAYS[0]


@pytest.fixture
def one_shot_shop(service_pool: ServicePool, open_shop: Callable[..., Shop]) -> Shop:
    """A store on a service with RETRY_DELAYS="": every event gets exactly one attempt."""
    return open_shop(service_pool.get(retry_delays=""))


def _disabled_by_failures(e: dict) -> bool:
    return not e["enabled"] and e["disabled_reason"] == "consecutive_failures"


# -- auto-disable ------------------------------------------------------------------------------
def test_ten_consecutive_failures_disable_the_endpoint_until_re_enabled(
    one_shot_shop: Shop, receiver: Receiver
) -> None:
    shop = one_shot_shop
    receiver.script("/down", statuses=[500])
    down = shop.endpoint(receiver.url("/down"))
    shop.endpoint(receiver.url("/up"))

    for _ in range(DISABLE_AFTER - 1):
        shop.publish()
    ep = shop.wait_endpoint(
        down["id"], lambda e: e["consecutive_failures"] == DISABLE_AFTER - 1, "9 failures"
    )
    assert (ep["enabled"], ep["disabled_reason"]) == (True, None)

    shop.publish()  # the tenth failure
    ep = shop.wait_endpoint(down["id"], _disabled_by_failures, "auto-disabled")
    assert ep["consecutive_failures"] == DISABLE_AFTER
    assert len(shop.attempts(down["id"])) == DISABLE_AFTER

    # Disabled: a later event reaches the healthy endpoint only.
    skipped = shop.publish().json()["id"]
    up = receiver.wait_for(DISABLE_AFTER + 1, "/up")
    assert skipped in event_ids(up)
    assert len(receiver.received("/down")) == DISABLE_AFTER

    # Re-enabling resets the counter; deliveries resume (the skipped event is not sent).
    receiver.script("/down", statuses=[200])
    ep = shop.patch(down["id"], enabled=True)
    assert (ep["enabled"], ep["disabled_reason"], ep["consecutive_failures"]) == (True, None, 0)
    resumed = shop.publish().json()["id"]
    reqs = receiver.wait_for(DISABLE_AFTER + 1, "/down")
    receiver.wait_for(DISABLE_AFTER + 2, "/up")
    assert event_ids(reqs)[DISABLE_AFTER:] == [resumed]
    assert len(receiver.received("/down")) == DISABLE_AFTER + 1
    log = shop.wait_attempts(down["id"], lambda a: a[0]["status"] == "succeeded", "a success")
    assert log[0]["event_id"] == resumed
    assert shop.get(down["id"])["consecutive_failures"] == 0


def test_auto_disable_drops_pending_retries_and_re_enabling_does_not_restore_them(
    service_pool: ServicePool, open_shop: Callable[..., Shop], receiver: Receiver
) -> None:
    # DISABLE_AFTER=2 and one retry 1 s after a failure: two failed events disable the
    # endpoint while both retries are still pending.
    shop = open_shop(service_pool.get(disable_after="2", retry_delays="1"))
    receiver.script("/down", statuses=[500])
    down = shop.endpoint(receiver.url("/down"))
    first = [shop.publish().json()["id"], shop.publish().json()["id"]]

    ep = shop.wait_endpoint(down["id"], _disabled_by_failures, "auto-disabled")
    assert ep["consecutive_failures"] == 2
    reqs = receiver.wait_for(2, "/down")
    assert sorted(event_ids(reqs)) == sorted(first)
    # Both retries would have come 1 s (+10 %) after their failures: they were dropped.
    assert_stays(
        receiver_count(receiver, "/down"),
        2,
        until=retry_due_by(max(r.at for r in reqs), 1.0),
        what="retries of a disabled endpoint",
    )

    receiver.script("/down", statuses=[200])
    shop.patch(down["id"], enabled=True)
    fresh = shop.publish().json()["id"]
    # The dropped retries were overdue: had re-enabling restored them, they would be sent
    # at once, before or with the fresh event.
    receiver.wait_for(3, "/down")
    shop.wait_attempts(down["id"], lambda a: len(a) >= 3, "the fresh event logged")
    assert event_ids(receiver.received("/down"))[2:] == [fresh]
    log = shop.attempts(down["id"])
    assert (log[0]["event_id"], log[0]["attempt"], log[0]["status"]) == (fresh, 1, "succeeded")
    assert len(log) == 3


# -- manual disable and delete -----------------------------------------------------------------
def test_manually_disabled_endpoint_receives_nothing(shop: Shop, receiver: Receiver) -> None:
    receiver.script("/hook", statuses=[500, 200])
    ep = shop.endpoint(receiver.url("/hook"))
    shop.endpoint(receiver.url("/other"))
    failed = shop.publish().json()["id"]
    (failure,) = receiver.wait_for(1, "/hook")
    shop.wait_attempts(ep["id"], lambda a: len(a) == 1, "the failure logged")

    disabled = shop.patch(ep["id"], enabled=False)
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "manual")
    assert shop.get(ep["id"])["disabled_reason"] == "manual"
    later = shop.publish().json()["id"]
    assert sorted(event_ids(receiver.wait_for(2, "/other"))) == sorted([failed, later])
    # Nothing new, and the failed event's retry (due RETRY_DELAYS[0] after it) is dropped.
    assert_stays(
        receiver_count(receiver, "/hook"),
        1,
        until=retry_due_by(failure.at, FIRST_RETRY_DELAY),
        what="requests to a disabled endpoint",
    )
    assert len(shop.attempts(ep["id"])) == 1

    ep = shop.patch(ep["id"], enabled=True)
    assert (ep["enabled"], ep["disabled_reason"], ep["consecutive_failures"]) == (True, None, 0)
    resumed = shop.publish().json()["id"]
    receiver.wait_for(2, "/hook")
    receiver.wait_for(3, "/other")
    assert event_ids(receiver.received("/hook")) == [failed, resumed]


def test_deleted_endpoint_is_gone_with_its_log_and_pending_retries(
    shop: Shop, receiver: Receiver
) -> None:
    receiver.script("/hook", statuses=[500])
    ep = shop.endpoint(receiver.url("/hook"))
    keep = shop.endpoint(receiver.url("/keep"))
    shop.publish()
    (failure,) = receiver.wait_for(1, "/hook")
    shop.wait_attempts(ep["id"], lambda a: len(a) == 1, "the failure logged")

    r = shop.call("DELETE", f"/v1/endpoints/{ep['id']}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    for method, path in (
        ("GET", ""),
        ("GET", "/deliveries"),
        ("GET", "/secret"),
        ("DELETE", ""),
        ("PATCH", ""),
    ):
        kw = {"json": {"enabled": True}} if method == "PATCH" else {}
        r = shop.call(method, f"/v1/endpoints/{ep['id']}{path}", **kw)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    listed = shop.call("GET", "/v1/endpoints").json()["data"]
    assert [e["id"] for e in listed] == [keep["id"]]

    # New events reach the remaining endpoint only; the pending retry went with the endpoint
    # (it was due RETRY_DELAYS[0] after the failure).
    later = shop.publish().json()["id"]
    assert later in event_ids(receiver.wait_for(2, "/keep"))
    assert_stays(
        receiver_count(receiver, "/hook"),
        1,
        until=retry_due_by(failure.at, FIRST_RETRY_DELAY),
        what="requests to a deleted endpoint",
    )


# -- the plan gate -----------------------------------------------------------------------------
def test_endpoints_need_the_business_plan(
    svc: Service, open_shop: Callable[..., Shop], receiver: Receiver
) -> None:
    shop = open_shop(svc, plan="starter")
    r = shop.call(
        "POST", "/v1/endpoints", json={"url": receiver.url("/hook"), "events": ["order.created"]}
    )
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert error["code"] == "plan_upgrade_required"
    assert "Business plan" in error["message"]
    assert "$199/month" in error["message"]
    # Publishing still works (202), and simply reaches no one.
    shop.publish()
    assert shop.call("GET", "/v1/endpoints").json() == {"data": [], "has_more": False}

    shop.set_plan("business")
    ep = shop.endpoint(receiver.url("/hook"))
    shop.publish()
    receiver.wait_for(1, "/hook")
    assert len(shop.wait_attempts(ep["id"], lambda a: len(a) == 1, "delivered")) == 1


def test_downgraded_store_gets_nothing_and_its_retries_are_dropped(
    shop: Shop, receiver: Receiver
) -> None:
    receiver.script("/hook", statuses=[500, 200])
    ep = shop.endpoint(receiver.url("/hook"))
    failed = shop.publish().json()["id"]
    (failure,) = receiver.wait_for(1, "/hook")
    shop.wait_attempts(ep["id"], lambda a: len(a) == 1, "the failure logged")

    shop.set_plan("free")
    skipped = shop.publish().json()["id"]  # still 202
    # A test send is refused (402) or accepted and never sent; either way nothing arrives.
    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/test", json={"type": "order.created"})
    assert r.status_code in (202, 402), r.text
    if r.status_code == 402:
        assert r.json()["error"]["code"] == "plan_upgrade_required"
    # Neither the new event nor the failed one's retry (due RETRY_DELAYS[0] later) comes.
    assert_stays(
        receiver_count(receiver, "/hook"),
        1,
        until=retry_due_by(failure.at, FIRST_RETRY_DELAY),
        what="requests to a store off the Business plan",
    )

    shop.set_plan("business")
    resumed = shop.publish().json()["id"]
    receiver.wait_for(2, "/hook")
    shop.wait_attempts(ep["id"], lambda a: len(a) >= 2, "the new event logged")
    ids = event_ids(receiver.received("/hook"))
    assert ids == [failed, resumed], f"{skipped} must never be sent: {ids}"
    assert shop.get(ep["id"])["enabled"] is True


# -- test sends and resends --------------------------------------------------------------------
def test_test_send_delivers_the_type_example_as_a_manual_attempt(
    shop: Shop, receiver: Receiver
) -> None:
    ep = shop.endpoint(receiver.url("/hook"), ["order.created"])
    types = shop.call("GET", "/v1/event-types").json()["data"]
    example = next(t["example"] for t in types if t["name"] == "seller.registered")

    # Any catalog type, subscribed or not.
    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/test", json={"type": "seller.registered"})
    assert r.status_code == 202, r.text
    event_id = r.json()["event_id"]
    (got,) = receiver.wait_for(1, "/hook")
    payload = Webhook(ep["secret"]).verify(got.body, got.headers)
    assert payload["id"] == event_id
    assert payload["type"] == "seller.registered"
    assert payload["data"] == example
    (attempt,) = shop.wait_attempts(ep["id"], lambda a: len(a) == 1, "the test send logged")
    assert (attempt["trigger"], attempt["attempt"], attempt["status"]) == (
        "manual",
        1,
        "succeeded",
    )
    assert (attempt["event_id"], attempt["event_type"]) == (event_id, "seller.registered")

    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/test", json={"type": "no.such.type"})
    assert r.status_code == 422, r.text


def test_manual_sends_are_not_retried_on_failure(shop: Shop, receiver: Receiver) -> None:
    receiver.script("/hook", statuses=[200, 500])
    ep = shop.endpoint(receiver.url("/hook"))
    event_id = shop.publish().json()["id"]
    (original,) = receiver.wait_for(1, "/hook")
    shop.wait_attempts(ep["id"], lambda a: len(a) == 1, "delivered")

    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/events/{event_id}/resend")
    assert r.status_code == 202, r.text
    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/test", json={"type": "order.created"})
    assert r.status_code == 202, r.text
    reqs = receiver.wait_for(3, "/hook")
    # The resend is a fresh delivery of the same bytes (newly timestamped and signed).
    resent = next(q for q in reqs[1:] if headers(q)["webhook-id"] == event_id)
    assert resent.body == original.body
    Webhook(ep["secret"]).verify(resent.body, resent.headers)

    log = shop.wait_attempts(ep["id"], lambda a: len(a) == 3, "both manual attempts logged")
    manual = [a for a in log if a["trigger"] == "manual"]
    assert len(manual) == 2
    assert {(a["attempt"], a["status"], a["http_status"]) for a in manual} == {(1, "failed", 500)}
    assert shop.get(ep["id"])["consecutive_failures"] == 2  # manual failures count too
    # Neither is retried: a retry would come RETRY_DELAYS[0] after the failures.
    assert_stays(
        receiver_count(receiver, "/hook"),
        3,
        until=retry_due_by(max(q.at for q in reqs), FIRST_RETRY_DELAY),
        what="retries of manual sends",
    )
    assert len(shop.attempts(ep["id"])) == 3

    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/events/evt_nosuchevent/resend")
    assert r.status_code == 404, r.text


def test_manual_sends_work_on_a_disabled_endpoint_and_reset_the_counter_without_enabling(
    one_shot_shop: Shop, receiver: Receiver
) -> None:
    shop = one_shot_shop
    receiver.script("/hook", statuses=[500])
    ep = shop.endpoint(receiver.url("/hook"))
    failed = [shop.publish().json()["id"] for _ in range(DISABLE_AFTER)]
    shop.wait_endpoint(ep["id"], _disabled_by_failures, "auto-disabled")

    receiver.script("/hook", statuses=[200])
    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/events/{failed[0]}/resend")
    assert r.status_code == 202, r.text
    (resent,) = receiver.wait_for(DISABLE_AFTER + 1, "/hook")[DISABLE_AFTER:]
    assert headers(resent)["webhook-id"] == failed[0]
    log = shop.wait_attempts(ep["id"], lambda a: a[0]["status"] == "succeeded", "resend logged")
    assert (log[0]["trigger"], log[0]["event_id"]) == ("manual", failed[0])
    endpoint = shop.get(ep["id"])
    assert endpoint["consecutive_failures"] == 0
    assert (endpoint["enabled"], endpoint["disabled_reason"]) == (False, "consecutive_failures")

    # A manually disabled endpoint takes test sends too.
    other = shop.endpoint(receiver.url("/paused"))
    shop.patch(other["id"], enabled=False)
    r = shop.call("POST", f"/v1/endpoints/{other['id']}/test", json={"type": "order.created"})
    assert r.status_code == 202, r.text
    (got,) = receiver.wait_for(1, "/paused")
    assert json.loads(got.body)["id"] == r.json()["event_id"]
    (attempt,) = shop.wait_attempts(other["id"], lambda a: len(a) == 1, "test send logged")
    assert (attempt["trigger"], attempt["status"]) == ("manual", "succeeded")
    assert shop.get(other["id"])["enabled"] is False


# -- re-enabling re-validates; off-plan stores get no manual sends either ----------------------
def test_re_enabling_validates_the_url_again(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    """An endpoint accepted under ALLOW_PRIVATE_NETWORKS=true, disabled, then re-enabled on a
    service (same database) that refuses private networks: the re-enable is refused."""
    lax = make_service()  # the harness allows private networks
    lax.start()
    _, key = lax.create_store()
    ep = lax.create_endpoint(key, receiver.url("/hook"))
    r = lax.request("PATCH", f"/v1/endpoints/{ep['id']}", key, json={"enabled": False})
    assert r.status_code == 200, r.text
    lax.stop_all()

    strict = make_service(allow_private_networks="false")
    strict.start()
    # The setting took effect: the same URL is refused for a new endpoint.
    r = strict.request(
        "POST",
        "/v1/endpoints",
        key,
        json={"url": receiver.url("/new"), "events": ["order.created"]},
    )
    assert_error(r, 422, "validation_error", "new private endpoint")
    r = strict.request("PATCH", f"/v1/endpoints/{ep['id']}", key, json={"enabled": True})
    assert_error(r, 422, "validation_error", "re-enable a private endpoint")
    after = strict.endpoint(key, ep["id"])
    assert (after["enabled"], after["disabled_reason"]) == (False, "manual")
    assert after["url"] == ep["url"]
    # Other changes to the (disabled) endpoint are still possible.
    r = strict.request("PATCH", f"/v1/endpoints/{ep['id']}", key, json={"description": "x"})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False


def _queued(db_url: str) -> list[tuple[str, str]]:
    return [(str(t), str(e)) for t, e in query(db_url, "SELECT trigger, event_id FROM deliveries")]


def test_manual_sends_queued_before_a_downgrade_are_never_sent(
    make_service: Callable[..., Service], receiver: Receiver, db_url: str
) -> None:
    """Test sends and resends queued while on Business, then the store is downgraded before a
    worker gets to them: the worker drops them unattempted (like the scheduled ones), and the
    API refuses new ones with 402."""
    svc = make_service()
    svc.start("api")  # no worker yet: everything queued stays queued
    store_id, key = svc.create_store()
    ep = svc.create_endpoint(key, receiver.url("/hook"))
    published = svc.publish(store_id).json()["id"]
    r = svc.request("POST", f"/v1/endpoints/{ep['id']}/test", key, json={"type": "order.created"})
    assert r.status_code == 202, r.text
    tested = r.json()["event_id"]
    r = svc.request("POST", f"/v1/endpoints/{ep['id']}/events/{published}/resend", key)
    assert r.status_code == 202, r.text
    assert sorted(_queued(db_url)) == sorted(
        [("scheduled", published), ("manual", tested), ("manual", published)]
    )

    r = svc.admin("PATCH", f"/v1/stores/{store_id}", json={"plan": "starter"})
    assert r.status_code == 200, r.text
    # Off the plan: no new manual sends.
    r = svc.request("POST", f"/v1/endpoints/{ep['id']}/test", key, json={"type": "order.created"})
    err = assert_error(r, 402, "plan_upgrade_required", "test send off plan")
    assert "Business plan" in err["message"]
    r = svc.request("POST", f"/v1/endpoints/{ep['id']}/events/{published}/resend", key)
    assert_error(r, 402, "plan_upgrade_required", "resend off plan")
    assert svc.publish(store_id).status_code == 202  # publishing still works, reaching no one

    worker = svc.spawn("worker")
    wait_until(lambda: _queued(db_url) == [], 20, "the queue emptied", lambda: _queued(db_url))
    assert receiver.received("/hook") == []
    assert svc.attempts(key, ep["id"]) == []
    assert worker.popen is not None
    assert worker.popen.poll() is None, worker.log()[-2000:]

    # Back on Business, the same worker delivers a new test send: it was running all along.
    r = svc.admin("PATCH", f"/v1/stores/{store_id}", json={"plan": "business"})
    assert r.status_code == 200, r.text
    r = svc.request("POST", f"/v1/endpoints/{ep['id']}/test", key, json={"type": "order.created"})
    assert r.status_code == 202, r.text
    (got,) = receiver.wait_for(1, "/hook")
    assert headers(got)["webhook-id"] == r.json()["event_id"]
    assert svc.endpoint(key, ep["id"])["enabled"] is True
