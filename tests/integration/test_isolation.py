"""Store isolation: a store API key never sees, changes or triggers another store's objects.

The matrix is derived from the application's routes: every store-scoped route with an id in
its path runs store A's key against store B's endpoint (or B's event) and expects the 404 of an
object that does not exist; every store-scoped route is also called naming B's store; every
platform route refuses a store key (403). Then nothing of B changed and nothing was sent to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prometora_webhooks.api import deps
from tests.support.api_helpers import assert_error, module_receiver, module_service, unique_path
from tests.support.receiver import Receiver
from tests.support.routes import RouteInfo, api_routes
from tests.support.service import ORDER, Service

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
    endpoint_ids: list[str]
    store: dict[str, Any]


def snapshot(svc: Service, t: Tenant) -> Snapshot:
    """B's state as B sees it (through its own key: a rotated key would fail here), and B's
    store as the platform sees it."""
    secret = svc.request("GET", f"/v1/endpoints/{t.endpoint['id']}/secret", t.key)
    assert secret.status_code == 200, secret.text
    listed = svc.request("GET", "/v1/endpoints?limit=100", t.key)
    assert listed.status_code == 200, listed.text
    store = svc.admin("GET", f"/v1/stores/{t.store_id}")
    assert store.status_code == 200, store.text
    return Snapshot(
        svc.endpoint(t.key, t.endpoint["id"]),
        secret.json()["secret"],
        svc.attempts(t.key, t.endpoint["id"]),
        [e["id"] for e in listed.json()["data"]],
        store.json(),
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


# -- the matrix, derived from the application's own routes -----------------------------------

ROUTES = [r for r in api_routes() if r.path.startswith("/v1/")]
# A valid body for each route that takes one: with it, only isolation can refuse the request.
# A new route with a body fails below (422) until it is given one here.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/endpoints"): {"url": "https://evil.example.com/", "events": ["order.created"]},
    ("PATCH", "/v1/endpoints/{endpoint_id}"): {
        "description": "taken",
        "enabled": False,
        "url": "https://evil.example.com/",
        "headers": {"X-Owned": "yes"},
    },
    ("POST", "/v1/endpoints/{endpoint_id}/test"): {"type": "order.created"},
    ("POST", "/v1/endpoints/{endpoint_id}/recover"): {"since": "{since}"},
    ("PATCH", "/v1/stores/{store_id}"): {"name": "taken", "plan": "free"},
    ("POST", "/v1/stores/{store_id}/events"): {"type": "order.created", "data": ORDER},
}


def _scope(route: RouteInfo) -> str:
    if deps.admin in route.dependencies:
        return "platform"
    if deps.store_scope in route.dependencies:
        return "store"
    return "any"  # e.g. the catalog: any valid token, nothing store-owned


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # the route's template
    path: str  # with {ep}, {own}, {evt}, {b} (B's endpoint, A's endpoint, B's event, B's store)
    status: int
    code: str
    body: dict[str, Any] | None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _cases() -> list[Case]:
    cases: list[Case] = []
    for r in ROUTES:
        scope = _scope(r)
        body = BODIES.get((r.method, r.path))
        if scope == "store":
            ids = {"endpoint_id": "{ep}", "event_id": "{evt}"}
            unknown = set(r.params) - set(ids)
            assert not unknown, f"{r.method} {r.path}: no foreign id for {unknown}; add one"
            path = r.path.format(**ids)
            if r.params:  # B's ids with A's key
                cases.append(Case(r.method, r.path, path, 404, "not_found", body))
            if "event_id" in r.params:  # B's event on A's own endpoint
                own = r.path.format(endpoint_id="{own}", event_id="{evt}")
                cases.append(Case(r.method, r.path, own, 404, "not_found", body))
            # A's key naming B's store too (every store-scoped route, with or without ids)
            cases.append(Case(r.method, r.path, path + "?store_id={b}", 404, "not_found", body))
        elif scope == "platform" and r.params:
            assert set(r.params) == {"store_id"}, f"{r.method} {r.path}: which ids?"
            path = r.path.format(store_id="{b}")
            cases.append(Case(r.method, r.path, path, 403, "forbidden", body))
        elif r.params:
            raise AssertionError(f"{r.method} {r.path}: neither store-scoped nor platform")
    return cases


CASES = _cases()


def test_the_matrix_covers_every_route() -> None:
    """The matrix is built from the app; make sure that built something, and the routes the
    contract names are in it."""
    store_routes = {(c.method, c.route) for c in CASES if c.status == 404}
    platform_routes = {(c.method, c.route) for c in CASES if c.status == 403}
    assert len(store_routes) >= 12, store_routes
    assert len(platform_routes) >= 5, platform_routes
    assert len(CASES) >= 25, len(CASES)
    for wanted in [
        ("GET", "/v1/endpoints/{endpoint_id}"),
        ("PATCH", "/v1/endpoints/{endpoint_id}"),
        ("DELETE", "/v1/endpoints/{endpoint_id}"),
        ("GET", "/v1/endpoints/{endpoint_id}/secret"),
        ("POST", "/v1/endpoints/{endpoint_id}/secret/rotate"),
        ("GET", "/v1/endpoints/{endpoint_id}/deliveries"),
        ("POST", "/v1/endpoints/{endpoint_id}/test"),
        ("POST", "/v1/endpoints/{endpoint_id}/recover"),
        ("POST", "/v1/endpoints/{endpoint_id}/events/{event_id}/resend"),
        ("GET", "/v1/events/stream"),
        ("POST", "/v1/endpoints"),
    ]:
        assert wanted in store_routes, wanted
    paths = {c.path for c in CASES}
    assert "/v1/endpoints/{own}/events/{evt}/resend" in paths  # B's event, A's endpoint
    assert "/v1/endpoints/{ep}/recover" in paths
    # every route with a path parameter under /v1 is in the matrix
    with_ids = {(r.method, r.path) for r in ROUTES if r.params}
    assert with_ids <= store_routes | platform_routes, with_ids - store_routes - platform_routes


def _since() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fill(value: Any, since: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, since) for k, v in value.items()}
    return since if value == "{since}" else value


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_store_key_cannot_reach_another_store(
    shared_service: Service,
    shared_receiver: Receiver,
    tenants: tuple[Tenant, Tenant],
    case: Case,
) -> None:
    svc = shared_service
    a, b = tenants
    before = snapshot(svc, b)
    path = case.path.format(
        ep=b.endpoint["id"],
        own=a.endpoint["id"],
        evt=b.event_id,
        own_evt=a.event_id,
        b=b.store_id,
    )
    kwargs: dict[str, Any] = {}
    if case.body is not None:
        kwargs["json"] = _fill(case.body, _since())
    r = svc.request(case.method, path, a.key, **kwargs)
    assert_error(r, case.status, case.code, case.id)
    for secret_of_b in (before.secret, b.endpoint["url"], b.endpoint["description"], b.key):
        assert secret_of_b not in r.text, case.id

    # A barrier: a new event for B is delivered and logged; a rogue send queued by the request
    # above would have been made by then (the worker takes work in order of its due time).
    barrier = svc.publish(b.store_id, "order.created")
    assert barrier.status_code == 202, barrier.text
    count = len(before.attempts) + 1
    got = shared_receiver.wait_for(count, b.path)
    svc.wait_attempts(b.key, b.endpoint["id"], count)

    after = snapshot(svc, b)
    assert after.secret == before.secret
    assert after.endpoint["enabled"] is True
    assert {k: v for k, v in after.endpoint.items() if k != "last_triggered_at"} == {
        k: v for k, v in before.endpoint.items() if k != "last_triggered_at"
    }
    assert after.endpoint_ids == before.endpoint_ids == [b.endpoint["id"]]
    assert after.store == before.store
    assert after.attempts[1:] == before.attempts
    assert after.attempts[0]["event_id"] == barrier.json()["id"]
    assert all(x["trigger"] == "scheduled" for x in after.attempts)
    assert len(got) == count
    assert {g.headers["webhook-id"] for g in got} == {x["event_id"] for x in after.attempts}
    # A's own endpoint got nothing from B's event either.
    assert len(shared_receiver.received(a.path)) == 1
    assert len(svc.attempts(a.key, a.endpoint["id"])) == 1


def test_stream_does_not_resume_after_another_stores_event(
    shared_service: Service, fresh_tenants: tuple[Tenant, Tenant]
) -> None:
    """GET /v1/events/stream with Last-Event-ID naming B's event: the cursor is not A's, so the
    stream starts from now (no replay of anything after B's event), and carries A's events only.
    """
    svc = shared_service
    a, b = fresh_tenants
    # Published after B's event and before the stream: replayed only if B's cursor were honoured.
    early = svc.publish(a.store_id, "seller.registered")
    assert early.status_code == 202, early.text
    seen: list[str] = []
    with svc.http.stream(
        "GET",
        svc.base_url + "/v1/events/stream",
        headers={"Authorization": f"Bearer {a.key}", "Last-Event-ID": b.event_id},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200, resp.read()
        lines = resp.iter_lines()
        assert next(lines) == ": connected"
        b_event = svc.publish(b.store_id, "order.created")
        assert b_event.status_code == 202, b_event.text
        mine = svc.publish(a.store_id, "order.created")
        assert mine.status_code == 202, mine.text
        for line in lines:
            if line.startswith("id: "):
                seen.append(line.removeprefix("id: "))
                if seen[-1] == mine.json()["id"]:
                    break
            for of_b in (b.store_id, b.event_id, b_event.json()["id"]):
                assert of_b not in line
    assert seen == [mine.json()["id"]], seen


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
