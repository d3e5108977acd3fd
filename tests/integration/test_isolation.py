"""Store isolation: a store API key never sees, changes or triggers another store's objects.

Each case runs store A's key against store B's endpoint (or B's event) and expects the 404 of
an object that does not exist; then checks that nothing of B changed and nothing was sent to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.api_helpers import assert_error, module_receiver, module_service, unique_path
from tests.support.receiver import Receiver
from tests.support.service import Service

shared_service = module_service()
shared_receiver = module_receiver()


@dataclass(frozen=True)
class Tenant:
    store_id: str
    key: str
    endpoint: dict[str, Any]
    path: str  # the receiver path of its endpoint
    event_id: str  # an event published to it (and delivered once)


def make_tenant(svc: Service, receiver: Receiver, name: str) -> Tenant:
    store_id, key = svc.create_store(name=name)
    path = unique_path(name)
    ep = svc.create_endpoint(key, receiver.url(path), description=f"{name}'s endpoint")
    r = svc.publish(store_id)
    assert r.status_code == 202, r.text
    receiver.wait_for(1, path)
    svc.wait_attempts(key, ep["id"], 1)
    return Tenant(store_id, key, ep, path, r.json()["id"])


@dataclass(frozen=True)
class Snapshot:
    endpoint: dict[str, Any]
    secret: str
    attempts: list[dict[str, Any]]


def snapshot(svc: Service, t: Tenant) -> Snapshot:
    """B's state as B sees it (through its own key)."""
    secret = svc.request("GET", f"/v1/endpoints/{t.endpoint['id']}/secret", t.key)
    assert secret.status_code == 200, secret.text
    return Snapshot(
        svc.endpoint(t.key, t.endpoint["id"]),
        secret.json()["secret"],
        svc.attempts(t.key, t.endpoint["id"]),
    )


def make_pair(svc: Service, receiver: Receiver) -> tuple[Tenant, Tenant]:
    return make_tenant(svc, receiver, "alice"), make_tenant(svc, receiver, "bob")


@pytest.fixture(scope="module")
def tenants(shared_service: Service, shared_receiver: Receiver) -> tuple[Tenant, Tenant]:
    """Shared by the read-only and must-be-refused cases: if isolation holds, B never changes."""
    return make_pair(shared_service, shared_receiver)


@pytest.fixture
def fresh_tenants(shared_service: Service, shared_receiver: Receiver) -> tuple[Tenant, Tenant]:
    return make_pair(shared_service, shared_receiver)


# (method, path, json body); {ep} is B's endpoint, {own} is A's, {evt} is B's event.
CROSS_STORE = [
    pytest.param("GET", "/v1/endpoints/{ep}", None, id="get-endpoint"),
    pytest.param(
        "PATCH",
        "/v1/endpoints/{ep}",
        {"description": "taken", "enabled": False, "url": "https://evil.example.com/"},
        id="patch-endpoint",
    ),
    pytest.param("DELETE", "/v1/endpoints/{ep}", None, id="delete-endpoint"),
    pytest.param("GET", "/v1/endpoints/{ep}/secret", None, id="get-secret"),
    pytest.param("POST", "/v1/endpoints/{ep}/secret/rotate", None, id="rotate-secret"),
    pytest.param("GET", "/v1/endpoints/{ep}/deliveries", None, id="deliveries"),
    pytest.param("POST", "/v1/endpoints/{ep}/test", {"type": "order.created"}, id="test-send"),
    pytest.param("POST", "/v1/endpoints/{ep}/events/{evt}/resend", None, id="resend"),
    pytest.param("POST", "/v1/endpoints/{own}/events/{evt}/resend", None, id="resend-own-endpoint"),
    pytest.param("GET", "/v1/endpoints/{ep}?store_id={b}", None, id="get-with-b-store-id"),
]


@pytest.mark.parametrize(("method", "template", "body"), CROSS_STORE)
def test_store_key_cannot_reach_another_store(
    shared_service: Service,
    shared_receiver: Receiver,
    tenants: tuple[Tenant, Tenant],
    method: str,
    template: str,
    body: dict[str, Any] | None,
) -> None:
    svc = shared_service
    a, b = tenants
    before = snapshot(svc, b)
    path = template.format(ep=b.endpoint["id"], own=a.endpoint["id"], evt=b.event_id, b=b.store_id)
    kwargs = {"json": body} if body is not None else {}
    r = svc.request(method, path, a.key, **kwargs)
    assert_error(r, 404, "not_found", f"{method} {template}")

    # A barrier: a new event for B is delivered and logged; a rogue send queued by the request
    # above would have been made by then (the worker takes work in order of its due time).
    barrier = svc.publish(b.store_id, "order.created")
    assert barrier.status_code == 202, barrier.text
    count = len(before.attempts) + 1
    got = shared_receiver.wait_for(count, b.path)
    svc.wait_attempts(b.key, b.endpoint["id"], count)

    after = snapshot(svc, b)
    assert after.secret == before.secret
    assert {k: v for k, v in after.endpoint.items() if k != "last_triggered_at"} == {
        k: v for k, v in before.endpoint.items() if k != "last_triggered_at"
    }
    assert after.attempts[1:] == before.attempts
    assert after.attempts[0]["event_id"] == barrier.json()["id"]
    assert all(x["trigger"] == "scheduled" for x in after.attempts)
    assert len(got) == count
    assert {g.headers["webhook-id"] for g in got} == {x["event_id"] for x in after.attempts}
    # A's own endpoint got nothing from B's event either.
    assert len(shared_receiver.received(a.path)) == 1
    assert len(svc.attempts(a.key, a.endpoint["id"])) == 1


def test_lists_show_only_own_endpoints(
    shared_service: Service, tenants: tuple[Tenant, Tenant]
) -> None:
    svc = shared_service
    a, b = tenants
    for t in (a, b):
        r = svc.request("GET", "/v1/endpoints?limit=100", t.key)
        assert r.status_code == 200, r.text
        assert [e["id"] for e in r.json()["data"]] == [t.endpoint["id"]]
    # A cursor of another store's endpoint is not a cursor of this list (a bad query parameter).
    r = svc.request("GET", f"/v1/endpoints?starting_after={b.endpoint['id']}", a.key)
    assert_error(r, 422, "validation_error")


def test_admin_with_store_id_acts_for_that_store(
    shared_service: Service, shared_receiver: Receiver, fresh_tenants: tuple[Tenant, Tenant]
) -> None:
    svc = shared_service
    a, b = fresh_tenants
    admin = svc.admin

    # Reads of B's objects with ?store_id=B see exactly what B sees.
    r = admin("GET", f"/v1/endpoints/{b.endpoint['id']}?store_id={b.store_id}")
    assert r.status_code == 200, r.text
    assert r.json() == svc.endpoint(b.key, b.endpoint["id"])
    r = admin("GET", f"/v1/endpoints?store_id={b.store_id}")
    assert [e["id"] for e in r.json()["data"]] == [b.endpoint["id"]]

    # ... and ?store_id=A does not reach B's endpoint.
    for method, suffix in [("GET", ""), ("GET", "/secret"), ("DELETE", "")]:
        r = admin(method, f"/v1/endpoints/{b.endpoint['id']}{suffix}?store_id={a.store_id}")
        assert_error(r, 404, "not_found", f"admin as A: {method} {suffix}")

    # A new endpoint made by the admin for A belongs to A (visible with A's key, not B's).
    path = unique_path("admin-made")
    r = admin(
        "POST",
        f"/v1/endpoints?store_id={a.store_id}",
        json={"url": shared_receiver.url(path), "events": ["seller.registered"]},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert svc.endpoint(a.key, made["id"])["url"] == shared_receiver.url(path)
    assert_error(svc.request("GET", f"/v1/endpoints/{made['id']}", b.key), 404, "not_found")

    # Writes as B: a PATCH and a test send land on B's endpoint.
    r = admin(
        "PATCH",
        f"/v1/endpoints/{b.endpoint['id']}?store_id={b.store_id}",
        json={"description": "set by the platform"},
    )
    assert r.status_code == 200, r.text
    assert svc.endpoint(b.key, b.endpoint["id"])["description"] == "set by the platform"
    r = admin(
        "POST",
        f"/v1/endpoints/{b.endpoint['id']}/test?store_id={b.store_id}",
        json={"type": "seller.registered"},
    )
    assert r.status_code == 202, r.text
    (_, test_send) = shared_receiver.wait_for(2, b.path)
    assert test_send.headers["webhook-id"] == r.json()["event_id"]

    # An admin naming a store that does not exist finds nothing of it.
    r = admin("GET", f"/v1/endpoints/{b.endpoint['id']}?store_id=str_doesnotexist")
    assert_error(r, 404, "not_found")
