"""Deliveries on the wire and in the log: signing, payload, fan-out, retries, failures.

Every test runs on SQLite and PostgreSQL against a real `serve` process (shared between
tests, one store per test; see tests/support/delivery_helpers.py) and a real HTTPS receiver.
Settings: RETRY_DELAYS=0.5,1, DELIVERY_TIMEOUT=2, DISABLE_AFTER=10.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import re
import time
from collections import Counter

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import prometora_webhooks
from tests.support import dbpeek
from tests.support.delivery_helpers import (
    DELIVERY_TIMEOUT,
    RETRY_DELAYS,
    SCHEDULING_SLACK_S,
    ServicePool,
    Shop,
    assert_stays,
    event_ids,
    expected_signature,
    headers,
    receiver_count,
    retry_due_by,
    retry_window,
    signatures,
)
from tests.support.receiver import Receiver
from tests.support.service import ORDER, SELLER

pytest_plugins = ["tests.support.delivery_helpers"]

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


# -- on the wire -------------------------------------------------------------------------------
def test_delivery_is_signed_with_the_standard_webhooks_headers(
    shop: Shop, receiver: Receiver
) -> None:
    ep = shop.endpoint(receiver.url("/hook"))
    secret = ep["secret"]
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) <= 64

    before = int(time.time())
    published = shop.publish()
    (got,) = receiver.wait_for(1, "/hook")
    after = int(time.time())
    event = published.json()

    h = headers(got)
    assert h["content-type"] == "application/json"
    assert "transfer-encoding" not in h, "the body must not be chunked"
    assert h["content-length"] == str(len(got.body))
    version = prometora_webhooks.__version__
    assert version == importlib.metadata.version("prometora-webhooks")
    assert h["user-agent"] == f"Prometora-Webhooks/{version}"
    assert h["webhook-id"] == event["id"]
    assert re.fullmatch(r"\d+", h["webhook-timestamp"])
    assert before <= int(h["webhook-timestamp"]) <= after
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", h["webhook-signature"])

    # A verifier we did not write accepts it ...
    assert Webhook(secret).verify(got.body, got.headers) == json.loads(published.content)
    # ... and our own HMAC agrees byte for byte.
    assert signatures(got) == [expected_signature(secret, got)]
    # A changed body, id or timestamp, or another endpoint's secret, does not verify.
    other_secret = shop.endpoint(receiver.url("/other"))["secret"]
    forged = [
        (secret, got.body.replace(b"9999", b"1"), got.headers),
        (secret, got.body, {**h, "webhook-id": "evt_forged"}),
        (secret, got.body, {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)}),
        (other_secret, got.body, got.headers),
    ]
    for key, body, hdrs in forged:
        with pytest.raises(WebhookVerificationError):
            Webhook(key).verify(body, hdrs)


def test_payload_is_exactly_the_event_and_only_subscribed_types_arrive(
    shop: Shop, receiver: Receiver
) -> None:
    orders = shop.endpoint(receiver.url("/orders"), ["order.created"])
    sellers = shop.endpoint(receiver.url("/sellers"), ["seller.registered"])
    shop.endpoint(receiver.url("/both"), ["order.created", "seller.registered"])

    order = shop.publish("order.created")
    seller = shop.publish("seller.registered")
    both = receiver.wait_for(2, "/both")
    (got_order,) = receiver.wait_for(1, "/orders")
    (got_seller,) = receiver.wait_for(1, "/sellers")

    for published, got, data in ((order, got_order, ORDER), (seller, got_seller, SELLER)):
        payload = json.loads(got.body)
        assert set(payload) == {"id", "type", "created", "data"}
        assert payload["id"].startswith("evt_")
        assert RFC3339_Z.match(payload["created"]), payload["created"]
        assert payload["data"] == data
        assert payload == published.json()
        assert got.body == published.content  # the bytes the 202 described
    assert json.loads(got_order.body)["type"] == "order.created"
    assert json.loads(got_seller.body)["type"] == "seller.registered"
    assert sorted(event_ids(both)) == sorted([order.json()["id"], seller.json()["id"]])

    # A later order reaches the order endpoints; by then a stray seller.registered delivery
    # to /orders or order.created to /sellers would have arrived too.
    marker = shop.publish("order.created").json()["id"]
    receiver.wait_for(2, "/orders")
    receiver.wait_for(3, "/both")
    assert event_ids(receiver.received("/orders")) == [order.json()["id"], marker]
    assert event_ids(receiver.received("/sellers")) == [seller.json()["id"]]

    # The log says the same, and a success is logged completely.
    (seller_attempt,) = shop.wait_attempts(sellers["id"], lambda a: len(a) >= 1, "seller log")
    assert seller_attempt["event_id"] == seller.json()["id"]
    assert seller_attempt["event_type"] == "seller.registered"
    order_log = shop.wait_attempts(orders["id"], lambda a: len(a) == 2, "order log")
    assert {a["event_type"] for a in order_log} == {"order.created"}
    for a in order_log:
        assert a["id"].startswith("att_")
        assert a["endpoint_id"] == orders["id"]
        assert (a["attempt"], a["trigger"], a["status"]) == (1, "scheduled", "succeeded")
        assert (a["http_status"], a["error"], a["response_body"]) == (200, None, "ok")
        assert isinstance(a["response_time_ms"], int)
        assert a["response_time_ms"] >= 0
        assert RFC3339_Z.match(a["attempted_at"])


def test_fan_out_sends_byte_identical_bodies_each_signed_with_its_own_secret(
    shop: Shop, receiver: Receiver
) -> None:
    paths = ["/a", "/b", "/c"]
    secrets = {p: shop.endpoint(receiver.url(p))["secret"] for p in paths}
    assert len(set(secrets.values())) == 3

    published = shop.publish()
    got = {p: receiver.wait_for(1, p)[0] for p in paths}

    assert {g.body for g in got.values()} == {published.content}
    assert {headers(g)["webhook-id"] for g in got.values()} == {published.json()["id"]}
    for p, g in got.items():
        Webhook(secrets[p]).verify(g.body, g.headers)
        assert signatures(g) == [expected_signature(secrets[p], g)]
        for q in paths:
            if q != p:
                with pytest.raises(WebhookVerificationError):
                    Webhook(secrets[q]).verify(g.body, g.headers)


# -- failures and retries ----------------------------------------------------------------------
def test_failing_endpoint_gets_three_identical_attempts_at_the_configured_gaps(
    shop: Shop, receiver: Receiver, request: pytest.FixtureRequest, service_pool: ServicePool
) -> None:
    receiver.script("/fail", statuses=[500], body=b"boom")
    ep = shop.endpoint(receiver.url("/fail"))
    published = shop.publish()
    event_id = published.json()["id"]

    # Each retry waits its delay (±10 %) after the previous failure: never less, and not
    # much more (a retry later than the upper bound fails the wait itself).
    receiver.wait_for(1, "/fail")
    for i, delay in enumerate(RETRY_DELAYS):
        low, high = retry_window(delay)
        reqs = receiver.wait_for(i + 2, "/fail", timeout=high)
        gap = reqs[i + 1].at - reqs[i].at
        assert low <= gap <= high, f"retry #{i + 1} came {gap:.3f}s after; want {delay}s ±10%"
    # The same bytes every time; a fresh timestamp and a valid signature each time.
    assert {r.body for r in reqs} == {published.content}
    assert event_ids(reqs) == [event_id] * 3
    timestamps = [int(headers(r)["webhook-timestamp"]) for r in reqs]
    assert timestamps == sorted(timestamps)
    assert timestamps[-1] - timestamps[0] >= int(sum(RETRY_DELAYS) * 0.9)
    for r in reqs:
        Webhook(ep["secret"]).verify(r.body, r.headers)

    log = shop.wait_attempts(ep["id"], lambda a: len(a) >= 3, "three attempts logged")
    assert [a["attempt"] for a in log] == [3, 2, 1]  # newest first
    for a in log:
        assert a["event_id"] == event_id
        assert a["trigger"] == "scheduled"
        assert (a["status"], a["http_status"], a["error"]) == ("failed", 500, "HTTP 500")
        assert a["response_body"] == "boom"
    assert len({a["id"] for a in log}) == 3
    endpoint = shop.get(ep["id"])
    assert endpoint["consecutive_failures"] == 3
    assert endpoint["enabled"] is True  # 3 < DISABLE_AFTER (10)
    assert endpoint["last_triggered_at"] == log[0]["attempted_at"]

    # The retries are exhausted: no fourth attempt, however long we wait for one (a fourth
    # would come about RETRY_DELAYS[-1] after the third).
    assert_stays(
        receiver_count(receiver, "/fail"),
        3,
        until=retry_due_by(reqs[2].at, RETRY_DELAYS[-1]),
        what="attempts after the last retry",
    )
    assert len(shop.attempts(ep["id"])) == 3


def test_success_after_a_failure_resets_consecutive_failures(
    shop: Shop, receiver: Receiver
) -> None:
    receiver.script("/flaky", statuses=[500, 200])
    ep = shop.endpoint(receiver.url("/flaky"))
    event_id = shop.publish().json()["id"]

    # Between the failure and its retry (RETRY_DELAYS[0] later) the counter shows it.
    shop.wait_endpoint(ep["id"], lambda e: e["consecutive_failures"] == 1, "one failure counted")
    log = shop.wait_attempts(
        ep["id"], lambda a: len(a) == 2 and a[0]["status"] == "succeeded", "the retry succeeds"
    )
    assert [(a["attempt"], a["status"], a["http_status"]) for a in log] == [
        (2, "succeeded", 200),
        (1, "failed", 500),
    ]
    assert {a["event_id"] for a in log} == {event_id}
    endpoint = shop.get(ep["id"])
    assert endpoint["consecutive_failures"] == 0
    assert endpoint["enabled"] is True


def test_slow_receiver_is_a_timeout(shop: Shop, receiver: Receiver) -> None:
    receiver.script("/slow", statuses=[200], delay=DELIVERY_TIMEOUT + 1.5)
    ep = shop.endpoint(receiver.url("/slow"))
    shop.publish()

    (first,) = shop.wait_attempts(ep["id"], lambda a: len(a) >= 1, "the first attempt logged")
    assert (first["attempt"], first["status"]) == (1, "failed")
    assert first["error"] == "timeout"
    assert first["http_status"] is None  # no response
    # The deadline covers the whole attempt: cut off at DELIVERY_TIMEOUT, not later.
    assert (
        DELIVERY_TIMEOUT * 1000 * 0.9 <= first["response_time_ms"] < DELIVERY_TIMEOUT * 1000 + 1000
    )
    assert shop.get(ep["id"])["consecutive_failures"] == 1


def test_redirect_is_a_failure_and_is_not_followed(shop: Shop, receiver: Receiver) -> None:
    receiver.script("/moved", statuses=[302], headers={"Location": receiver.url("/target")})
    ep = shop.endpoint(receiver.url("/moved"))
    shop.publish()

    (first,) = shop.wait_attempts(ep["id"], lambda a: len(a) >= 1, "the first attempt logged")
    assert (first["status"], first["http_status"]) == ("failed", 302)
    assert first["error"] == "redirect not followed"
    # The attempt is logged only once the request is over, so a followed redirect would have
    # reached /target by now.
    assert receiver.received("/target") == []
    assert shop.get(ep["id"])["consecutive_failures"] >= 1


def test_410_gone_disables_the_endpoint_at_once(shop: Shop, receiver: Receiver) -> None:
    receiver.script("/gone", statuses=[410])
    gone = shop.endpoint(receiver.url("/gone"))
    shop.endpoint(receiver.url("/alive"))
    first = shop.publish().json()["id"]

    ep = shop.wait_endpoint(gone["id"], lambda e: not e["enabled"], "endpoint disabled")
    assert ep["disabled_reason"] == "gone"
    (attempt,) = shop.attempts(gone["id"])
    assert (attempt["status"], attempt["http_status"], attempt["error"]) == (
        "failed",
        410,
        "HTTP 410",
    )
    # A later event reaches the other endpoint and not the disabled one.
    second = shop.publish().json()["id"]
    alive = receiver.wait_for(2, "/alive")
    assert sorted(event_ids(alive)) == sorted([first, second])
    # No retry either: one would have come RETRY_DELAYS[0] after the 410.
    (gone_req,) = receiver.received("/gone")
    assert_stays(
        receiver_count(receiver, "/gone"),
        1,
        until=retry_due_by(gone_req.at, RETRY_DELAYS[0]),
        what="requests to the 410 endpoint",
    )
    assert len(shop.attempts(gone["id"])) == 1


def test_retry_after_longer_than_the_configured_delay_is_respected(
    shop: Shop, receiver: Receiver, request: pytest.FixtureRequest, service_pool: ServicePool
) -> None:
    retry_after = 1  # second; longer than RETRY_DELAYS[0] (0.5 s) even with its +10 %
    statuses = {"/busy429": 429, "/busy503": 503}  # both honour Retry-After; checked at once
    endpoints = {}
    for path, status in statuses.items():
        receiver.script(path, statuses=[status, 200], headers={"Retry-After": str(retry_after)})
        endpoints[path] = shop.endpoint(receiver.url(path))["id"]
    shop.publish()

    for path, status in statuses.items():
        first, second = receiver.wait_for(2, path, timeout=retry_after + SCHEDULING_SLACK_S)
        gap = second.at - first.at
        assert retry_after <= gap <= retry_after + SCHEDULING_SLACK_S, (status, gap)
        assert first.body == second.body
        log = shop.wait_attempts(endpoints[path], lambda a: len(a) == 2, "both attempts logged")
        assert [(a["attempt"], a["http_status"], a["error"]) for a in log] == [
            (2, 200, None),
            (1, status, f"HTTP {status}"),
        ]


# -- the log and publishing --------------------------------------------------------------------
def test_delivery_log_is_newest_first_ten_by_default_and_pages_with_a_cursor(
    shop: Shop, receiver: Receiver
) -> None:
    ep = shop.endpoint(receiver.url("/hook"))
    published = [shop.publish().json()["id"] for _ in range(12)]
    receiver.wait_for(12, "/hook")
    everything = shop.wait_attempts(ep["id"], lambda a: len(a) == 12, "12 attempts logged")
    assert sorted(a["event_id"] for a in everything) == sorted(published)
    stamps = [a["attempted_at"] for a in everything]
    assert stamps == sorted(stamps, reverse=True), "newest first"

    path = f"/v1/endpoints/{ep['id']}/deliveries"
    first = shop.call("GET", path).json()
    assert len(first["data"]) == 10
    assert first["has_more"] is True
    assert first["data"] == everything[:10]
    rest = shop.call("GET", path, params={"starting_after": first["data"][-1]["id"]}).json()
    assert rest == {"data": everything[10:], "has_more": False}

    pages, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["starting_after"] = cursor
        page = shop.call("GET", path, params=params).json()
        pages.append(page)
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert [len(p["data"]) for p in pages] == [5, 5, 2]
    assert [a for p in pages for a in p["data"]] == everything

    for bad in ({"limit": 0}, {"limit": 101}, {"starting_after": "att_nope"}):
        r = shop.call("GET", path, params=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] == "validation_error"


def test_idempotent_publish_replays_the_first_event_and_delivers_once(
    shop: Shop, receiver: Receiver
) -> None:
    ep = shop.endpoint(receiver.url("/hook"), ["order.created", "seller.registered"])
    key = {"Idempotency-Key": "order-ord_xyz789-created"}
    first = shop.publish(headers=key)
    assert "idempotent-replayed" not in first.headers

    changed = {**ORDER, "total": 1}
    for type_, data in (("order.created", changed), ("seller.registered", SELLER)):
        again = shop.svc.publish(shop.id, type_, data=data, headers=key)
        assert again.status_code == 200, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content  # the first event, unchanged

    (got,) = receiver.wait_for(1, "/hook")
    assert got.body == first.content
    # Another key is another event; once it has arrived, a delivery the replays had wrongly
    # queued (before it) would have arrived too.
    other = shop.publish(headers={"Idempotency-Key": "another"}).json()["id"]
    receiver.wait_for(2, "/hook")
    ids = Counter(event_ids(receiver.received("/hook")))
    assert ids == Counter({first.json()["id"]: 1, other: 1}), ids
    log = shop.wait_attempts(ep["id"], lambda a: len(a) == 2, "two attempts logged")
    assert sorted(a["event_id"] for a in log) == sorted([first.json()["id"], other])


def test_idempotency_key_is_forgotten_after_24_hours(shop: Shop, receiver: Receiver) -> None:
    """Within 24 h a key replays; once its first event is older than that, the same key
    publishes (and delivers) a new event, which then owns the key."""
    shop.endpoint(receiver.url("/hook"))
    key = {"Idempotency-Key": "order-ord_expiring"}

    def publish() -> httpx.Response:
        return shop.svc.publish(shop.id, "order.created", headers=key)

    first = publish()
    assert first.status_code == 202, first.text
    assert publish().headers["idempotent-replayed"] == "true"
    aged = dbpeek.execute(
        shop.svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"],
        "UPDATE events SET created_at = created_at - :ms WHERE id = :id",
        ms=24 * 3600 * 1000 + 1000,
        id=first.json()["id"],
    )
    assert aged == 1
    again = publish()
    assert again.status_code == 202, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    got = receiver.wait_for(2, "/hook")
    assert sorted(event_ids(got)) == sorted([first.json()["id"], again.json()["id"]])
    replay = publish()
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == again.json()["id"]


def test_rotated_secret_signs_alongside_the_old_one_newest_first(
    shop: Shop, receiver: Receiver
) -> None:
    ep = shop.endpoint(receiver.url("/hook"))
    old = ep["secret"]
    r = shop.call("POST", f"/v1/endpoints/{ep['id']}/secret/rotate")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert shop.call("GET", f"/v1/endpoints/{ep['id']}/secret").json() == {"secret": new}

    shop.publish()
    (got,) = receiver.wait_for(1, "/hook")
    sigs = signatures(got)
    assert sigs == [expected_signature(new, got), expected_signature(old, got)]
    for secret in (new, old):  # a receiver holding either secret accepts the delivery
        Webhook(secret).verify(got.body, got.headers)
    for secret, sig in ((new, sigs[0]), (old, sigs[1])):  # each signature by itself
        Webhook(secret).verify(got.body, {**headers(got), "webhook-signature": sig})
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(got.body, {**headers(got), "webhook-signature": sigs[1]})

    # A second rotation within 24 h keeps both earlier secrets signing.
    newest = shop.call("POST", f"/v1/endpoints/{ep['id']}/secret/rotate").json()["secret"]
    shop.publish()
    got2 = receiver.wait_for(2, "/hook")[1]
    assert signatures(got2) == [expected_signature(s, got2) for s in (newest, new, old)]
    for secret in (newest, new, old):
        Webhook(secret).verify(got2.body, got2.headers)
