"""Bad input, table-driven: every case gets its exact status and the contract's error envelope.

The table runs against one shared service per database (the requests change nothing); the
private-address cases run against a second one started with ALLOW_PRIVATE_NETWORKS=false.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.api_helpers import assert_error, module_service
from tests.support.service import ORDER, Service

shared_service = module_service()
private_refused_service = module_service(allow_private_networks="false")

KIB = 1024
UNSET: Any = object()
EP = "/v1/endpoints"


@dataclass(frozen=True)
class World:
    store_id: str
    key: str
    offplan_store_id: str
    offplan_key: str
    endpoint_id: str


@dataclass(frozen=True)
class Bad:
    """One bad request. ``path`` may use {store}, {endpoint} and {offplan}."""

    method: str
    path: str
    status: int
    code: str
    token: str = "store"  # "store" | "admin" | "offplan" | "none" | "raw:<Authorization value>"
    json: Any = UNSET
    content: bytes | Callable[[], Iterator[bytes]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, svc: Service, w: World) -> httpx.Response:
        path = self.path.format(
            store=w.store_id, endpoint=w.endpoint_id, offplan=w.offplan_store_id
        )
        headers = dict(self.headers)
        token: str | None = {
            "store": w.key,
            "admin": svc.admin_token,
            "offplan": w.offplan_key,
            "none": None,
        }.get(self.token)
        if self.token.startswith("raw:"):
            headers["Authorization"] = self.token[4:]
        kwargs: dict[str, Any] = {"headers": headers}
        if self.json is not UNSET:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content() if callable(self.content) else self.content
        return svc.request(self.method, path, token, **kwargs)


def order(**changes: Any) -> dict[str, Any]:
    """ORDER with top-level changes; a value of UNSET removes the key."""
    data = copy.deepcopy(ORDER)
    for k, v in changes.items():
        if v is UNSET:
            del data[k]
        else:
            data[k] = v
    return data


def item(**changes: Any) -> dict[str, Any]:
    return {**ORDER["items"][0], **changes}


def publish(data: Any, status: int = 422, code: str = "validation_error", **kw: Any) -> Bad:
    return Bad(
        "POST",
        "/v1/stores/{store}/events",
        status,
        code,
        token="admin",
        json={"type": "order.created", "data": data},
        **kw,
    )


def new_endpoint(body: Any, status: int = 422, code: str = "validation_error", **kw: Any) -> Bad:
    return Bad("POST", EP, status, code, json=body, **kw)


def endpoint_url(url: str) -> Bad:
    return new_endpoint({"url": url, "events": ["order.created"]})


def patch(body: Any) -> Bad:
    return Bad("PATCH", EP + "/{endpoint}", 422, "validation_error", json=body)


def padded_json(size: int, prefix: bytes = b'{"name":"') -> bytes:
    """Valid JSON of exactly ``size`` bytes (a long string field)."""
    return prefix + b"x" * (size - len(prefix) - 2) + b'"}'


def chunked(payload: bytes) -> Callable[[], Iterator[bytes]]:
    """A body sent with Transfer-Encoding: chunked (no Content-Length)."""

    def gen() -> Iterator[bytes]:
        for i in range(0, len(payload), 8 * KIB):
            yield payload[i : i + 8 * KIB]

    return gen


BIG_PUBLISH = padded_json(256 * KIB + 1, b'{"type":"order.created","data":{"id":"')[:-1] + b"}"
URL = "https://hooks.example.com/in"
OK_EP = {"url": URL, "events": ["order.created"]}

CASES = [
    # -- malformed bodies ------------------------------------------------------------------------
    pytest.param(
        Bad("POST", "/v1/stores/{store}/events", 422, "validation_error", "admin", content=b"{"),
        id="publish-malformed-json",
    ),
    pytest.param(
        Bad("POST", EP, 422, "validation_error", content=b'{"url": "https://x.example/",'),
        id="endpoint-malformed-json",
    ),
    pytest.param(
        Bad("PATCH", EP + "/{endpoint}", 422, "validation_error", content=b"{enabled: false}"),
        id="patch-invalid-json",
    ),
    pytest.param(
        Bad("POST", "/v1/stores", 422, "validation_error", "admin", content=b""),
        id="store-empty-body",
    ),
    pytest.param(
        Bad("POST", "/v1/stores", 422, "validation_error", "admin", content=b"\xff\xfe{}"),
        id="store-body-not-utf8",
    ),
    pytest.param(
        Bad("POST", "/v1/stores/{store}/events", 422, "validation_error", "admin", json=[]),
        id="publish-body-is-array",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            422,
            "validation_error",
            "admin",
            content=b'{"type":"order.created","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        ),
        id="publish-deeply-nested-json",
    ),
    # -- stores ----------------------------------------------------------------------------------
    pytest.param(
        Bad("POST", "/v1/stores", 422, "validation_error", "admin", json={"name": "N"}),
        id="store-missing-plan",
    ),
    pytest.param(
        Bad("POST", "/v1/stores", 422, "validation_error", "admin", json={"name": 5, "plan": "b"}),
        id="store-name-wrong-type",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores",
            422,
            "validation_error",
            "admin",
            json={"name": "N", "plan": "business", "owner": "x"},
        ),
        id="store-unknown-field",
    ),
    pytest.param(
        Bad("POST", "/v1/stores", 422, "validation_error", "admin", json={"name": "", "plan": "b"}),
        id="store-empty-name",
    ),
    pytest.param(
        Bad("PATCH", "/v1/stores/{store}", 422, "validation_error", "admin", json={"plan": 1}),
        id="store-patch-plan-number",
    ),
    pytest.param(
        Bad("PATCH", "/v1/stores/{store}", 422, "validation_error", "admin", json={"name": "  "}),
        id="store-patch-blank-name",
    ),
    pytest.param(
        Bad("GET", "/v1/stores/str_doesnotexist", 404, "not_found", "admin"),
        id="store-unknown",
    ),
    # -- publishing ------------------------------------------------------------------------------
    pytest.param(
        Bad(
            "POST", "/v1/stores/{store}/events", 422, "validation_error", "admin", json={"data": {}}
        ),
        id="publish-missing-type",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            422,
            "validation_error",
            "admin",
            json={"type": "order.created"},
        ),
        id="publish-missing-data",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            422,
            "validation_error",
            "admin",
            json={"type": "order.created", "data": ORDER, "extra": 1},
        ),
        id="publish-unknown-field",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            422,
            "validation_error",
            "admin",
            json={"type": 7, "data": ORDER},
        ),
        id="publish-type-wrong-type",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            422,
            "validation_error",
            "admin",
            json={"type": "order.exploded", "data": ORDER},
        ),
        id="publish-unknown-event-type",
    ),
    pytest.param(publish(order(customer=UNSET)), id="order-missing-customer"),
    pytest.param(publish(order(customer={"email": "a@b.c"})), id="order-customer-missing-name"),
    pytest.param(publish(order(items=[item(quantity=0)])), id="order-quantity-0"),
    pytest.param(publish(order(items=[item(quantity=1.5)])), id="order-quantity-float"),
    pytest.param(publish(order(total="9999")), id="order-total-string"),
    pytest.param(publish(order(total=2**70)), id="order-total-beyond-64-bits"),
    pytest.param(publish(order(currency="usdd")), id="order-currency-4-letters"),
    pytest.param(publish(order(items=[])), id="order-empty-items"),
    pytest.param(publish(order(items=[{"listing_id": "l"}])), id="order-item-missing-fields"),
    pytest.param(publish("an order"), id="order-data-not-object"),
    pytest.param(
        publish(ORDER, headers={"Idempotency-Key": "k" * 256}), id="idempotency-key-too-long"
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/str_doesnotexist/events",
            404,
            "not_found",
            "admin",
            json={"type": "order.created", "data": ORDER},
        ),
        id="publish-unknown-store",
    ),
    # -- endpoints: body shape -------------------------------------------------------------------
    pytest.param(new_endpoint({"events": ["order.created"]}), id="endpoint-missing-url"),
    pytest.param(new_endpoint({"url": URL}), id="endpoint-missing-events"),
    pytest.param(new_endpoint({"url": URL, "events": []}), id="endpoint-events-empty"),
    pytest.param(new_endpoint({"url": URL, "events": "order.created"}), id="endpoint-events-str"),
    pytest.param(
        new_endpoint({"url": URL, "events": ["order.exploded"]}), id="endpoint-unknown-event-type"
    ),
    pytest.param(new_endpoint({**OK_EP, "secret": "whsec_x"}), id="endpoint-unknown-field"),
    pytest.param(new_endpoint({**OK_EP, "format": "xml"}), id="endpoint-unknown-format"),
    pytest.param(new_endpoint({**OK_EP, "description": "d" * 501}), id="endpoint-description-long"),
    pytest.param(new_endpoint({**OK_EP, "headers": ["X-A: b"]}), id="endpoint-headers-list"),
    pytest.param(
        new_endpoint({**OK_EP, "headers": {"X-A": "a\r\nX-Injected: 1"}}),
        id="endpoint-header-value-crlf",
    ),
    pytest.param(
        new_endpoint({**OK_EP, "headers": {"Content-Type": "text/plain"}}),
        id="endpoint-header-reserved",
    ),
    pytest.param(
        new_endpoint({**OK_EP, "headers": {"webhook-signature": "v1,x"}}),
        id="endpoint-header-webhook-prefix",
    ),
    pytest.param(
        new_endpoint({**OK_EP, "headers": {"Bad Name": "x"}}), id="endpoint-header-name-invalid"
    ),
    # -- endpoints: URLs (this service allows private networks, not http://) ---------------------
    pytest.param(endpoint_url("http://hooks.example.com/in"), id="url-http-not-allowed"),
    pytest.param(endpoint_url("ftp://hooks.example.com/in"), id="url-ftp"),
    pytest.param(endpoint_url("/in"), id="url-relative"),
    pytest.param(endpoint_url("hooks.example.com/in"), id="url-no-scheme"),
    pytest.param(endpoint_url(""), id="url-empty"),
    pytest.param(endpoint_url("https:///in"), id="url-no-host"),
    pytest.param(endpoint_url("https://hooks.example.com/" + "a" * 2030), id="url-over-2048"),
    pytest.param(endpoint_url("https://user:pass@hooks.example.com/in"), id="url-credentials"),
    pytest.param(endpoint_url("https://user@hooks.example.com/in"), id="url-username"),
    pytest.param(endpoint_url("https://hooks.example.com:99999/in"), id="url-bad-port"),
    pytest.param(endpoint_url("https://hooks example.com/in"), id="url-space"),
    pytest.param(endpoint_url("https://169.254.169.254/latest"), id="url-cloud-metadata"),
    pytest.param(endpoint_url("https://[fd00:ec2::254]/"), id="url-cloud-metadata-v6"),
    pytest.param(endpoint_url("https://[64:ff9b::7f00:1]/"), id="url-nat64"),
    pytest.param(endpoint_url("https://[2002:7f00:1::]/"), id="url-6to4"),
    pytest.param(endpoint_url("https://[::ffff:127.0.0.1]/"), id="url-ipv4-mapped"),
    pytest.param(endpoint_url("https://0.0.0.0/"), id="url-unspecified"),
    pytest.param(
        new_endpoint(OK_EP, 402, "plan_upgrade_required", token="offplan"), id="endpoint-off-plan"
    ),
    # -- endpoints: PATCH, sub-resources ---------------------------------------------------------
    pytest.param(patch({"enabled": "yes"}), id="patch-enabled-string"),
    pytest.param(patch({"enabled": 1}), id="patch-enabled-int"),
    pytest.param(patch({"url": "ftp://hooks.example.com/"}), id="patch-url-ftp"),
    pytest.param(patch({"url": "https://169.254.169.254/"}), id="patch-url-metadata"),
    pytest.param(patch({"events": []}), id="patch-events-empty"),
    pytest.param(patch({"events": ["nope.nope"]}), id="patch-events-unknown"),
    pytest.param(patch({"colour": "red"}), id="patch-unknown-field"),
    pytest.param(patch([]), id="patch-body-array"),
    pytest.param(
        Bad("POST", EP + "/{endpoint}/test", 422, "validation_error", json={}),
        id="test-send-missing-type",
    ),
    pytest.param(
        Bad("POST", EP + "/{endpoint}/test", 422, "validation_error", json={"type": "x.y"}),
        id="test-send-unknown-type",
    ),
    pytest.param(
        Bad("POST", EP + "/{endpoint}/events/evt_doesnotexist/resend", 404, "not_found"),
        id="resend-unknown-event",
    ),
    pytest.param(Bad("GET", EP + "/we_doesnotexist", 404, "not_found"), id="endpoint-unknown"),
    pytest.param(
        Bad("DELETE", EP + "/we_doesnotexist", 404, "not_found"), id="endpoint-delete-unknown"
    ),
    # -- query parameters ------------------------------------------------------------------------
    pytest.param(Bad("GET", EP + "?limit=0", 422, "validation_error"), id="limit-0"),
    pytest.param(Bad("GET", EP + "?limit=101", 422, "validation_error"), id="limit-101"),
    pytest.param(Bad("GET", EP + "?limit=abc", 422, "validation_error"), id="limit-abc"),
    pytest.param(Bad("GET", EP + "?limit=-1", 422, "validation_error"), id="limit-negative"),
    pytest.param(
        Bad("GET", EP + "/{endpoint}/deliveries?limit=0", 422, "validation_error"),
        id="deliveries-limit-0",
    ),
    pytest.param(
        Bad("GET", EP + "/{endpoint}/deliveries?limit=101", 422, "validation_error"),
        id="deliveries-limit-101",
    ),
    pytest.param(
        Bad("GET", EP + "?starting_after=we_doesnotexist", 422, "validation_error"),
        id="cursor-unknown",
    ),
    pytest.param(
        Bad("GET", EP + "/{endpoint}/deliveries?starting_after=att_nope", 422, "validation_error"),
        id="deliveries-cursor-unknown",
    ),
    # -- routes and methods ----------------------------------------------------------------------
    pytest.param(Bad("GET", "/v1/nope", 404, "not_found"), id="unknown-route"),
    pytest.param(Bad("GET", "/v1/nope", 404, "not_found", "none"), id="unknown-route-no-token"),
    pytest.param(Bad("GET", EP + "/{endpoint}/nope", 404, "not_found"), id="unknown-subroute"),
    pytest.param(Bad("PUT", EP + "/{endpoint}", 405, "method_not_allowed"), id="put-endpoint"),
    pytest.param(Bad("DELETE", "/v1/event-types", 405, "method_not_allowed"), id="delete-catalog"),
    pytest.param(Bad("GET", "/v1/stores", 405, "method_not_allowed", "admin"), id="get-stores"),
    # -- authentication and authorisation --------------------------------------------------------
    pytest.param(Bad("GET", EP, 401, "unauthorized", "none"), id="no-token"),
    pytest.param(Bad("GET", "/v1/event-types", 401, "unauthorized", "none"), id="catalog-no-token"),
    pytest.param(Bad("GET", EP, 401, "unauthorized", "raw:Bearer nope"), id="invalid-token"),
    pytest.param(Bad("GET", EP, 401, "unauthorized", "raw:Bearer sk_nope"), id="invalid-sk-key"),
    pytest.param(Bad("GET", EP, 401, "unauthorized", "raw:Bearer"), id="empty-bearer"),
    pytest.param(
        Bad("GET", EP, 401, "unauthorized", "raw:Basic YWRtaW46YWRtaW4="), id="basic-auth"
    ),
    pytest.param(
        Bad("POST", "/v1/stores", 401, "unauthorized", "none", json={"name": "N", "plan": "b"}),
        id="create-store-no-token",
    ),
    pytest.param(
        Bad("POST", "/v1/stores", 403, "forbidden", json={"name": "N", "plan": "business"}),
        id="store-key-creates-store",
    ),
    pytest.param(Bad("GET", "/v1/stores/{store}", 403, "forbidden"), id="store-key-gets-store"),
    pytest.param(
        Bad("POST", "/v1/stores/{store}/api-key/rotate", 403, "forbidden"),
        id="store-key-rotates-api-key",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            403,
            "forbidden",
            json={"type": "order.created", "data": ORDER},
        ),
        id="store-key-publishes",
    ),
    pytest.param(
        Bad("POST", "/v1/stores/{store}/dashboard-links", 403, "forbidden"),
        id="store-key-dashboard-link",
    ),
    pytest.param(
        Bad("GET", EP, 422, "validation_error", "admin"), id="admin-list-without-store-id"
    ),
    pytest.param(
        Bad("POST", EP, 422, "validation_error", "admin", json=OK_EP),
        id="admin-create-without-store-id",
    ),
    pytest.param(
        Bad("GET", EP + "/{endpoint}", 422, "validation_error", "admin"),
        id="admin-get-without-store-id",
    ),
    pytest.param(Bad("GET", EP + "?store_id={offplan}", 404, "not_found"), id="key-other-store-id"),
    # -- body size (raw bytes, with and without Content-Length) ----------------------------------
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            413,
            "payload_too_large",
            "admin",
            content=BIG_PUBLISH,
        ),
        id="publish-over-256k",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores/{store}/events",
            413,
            "payload_too_large",
            "admin",
            content=chunked(BIG_PUBLISH),
        ),
        id="publish-over-256k-chunked",
    ),
    pytest.param(
        Bad(
            "POST",
            "/v1/stores",
            413,
            "payload_too_large",
            "admin",
            content=padded_json(16 * KIB + 1),
        ),
        id="store-over-16k",
    ),
    pytest.param(
        Bad("POST", EP, 413, "payload_too_large", content=chunked(padded_json(16 * KIB + 1))),
        id="endpoint-over-16k-chunked",
    ),
    pytest.param(
        Bad(
            "PATCH",
            EP + "/{endpoint}",
            413,
            "payload_too_large",
            content=padded_json(64 * KIB, b'{"description":"'),
        ),
        id="patch-over-16k",
    ),
    pytest.param(
        Bad(
            "POST",
            EP + "/{endpoint}/test",
            413,
            "payload_too_large",
            content=chunked(padded_json(100 * KIB, b'{"type":"')),
        ),
        id="test-send-over-16k-chunked",
    ),
]

PRIVATE_URLS = [
    pytest.param("https://127.0.0.1/in", id="loopback"),
    pytest.param("https://2130706433/in", id="loopback-decimal"),
    pytest.param("https://0x7f000001/in", id="loopback-hex"),
    pytest.param("https://0x7f.0.0.1/in", id="loopback-hex-octet"),
    pytest.param("https://017700000001/in", id="loopback-octal"),
    pytest.param("https://127.1/in", id="loopback-short"),
    pytest.param("https://[::1]/in", id="loopback-v6"),
    pytest.param("https://localhost/in", id="localhost"),
    pytest.param("https://api.localhost/in", id="dot-localhost"),
    pytest.param("https://10.1.2.3/in", id="private-10"),
    pytest.param("https://172.16.0.1/in", id="private-172"),
    pytest.param("https://192.168.1.1/in", id="private-192"),
    pytest.param("https://100.64.0.1/in", id="cgnat"),
    pytest.param("https://169.254.1.1/in", id="link-local"),
    pytest.param("https://[fe80::1]/in", id="link-local-v6"),
    pytest.param("https://[fc00::1]/in", id="unique-local-v6"),
    pytest.param("https://169.254.169.254/in", id="cloud-metadata"),
]


def make_world(svc: Service) -> World:
    store_id, key = svc.create_store()
    offplan_id, offplan_key = svc.create_store(plan="free", name="Free Shop")
    ep = svc.create_endpoint(key, "https://hooks.example.com/never", events=["seller.registered"])
    return World(store_id, key, offplan_id, offplan_key, ep["id"])


@pytest.fixture(scope="module")
def world(shared_service: Service) -> World:
    return make_world(shared_service)


@pytest.mark.parametrize("case", CASES)
def test_bad_request(shared_service: Service, world: World, case: Bad, request: Any) -> None:
    r = case.send(shared_service, world)
    assert_error(r, case.status, case.code, request.node.callspec.id)


def test_bad_requests_change_nothing(shared_service: Service, world: World) -> None:
    """After the whole table (module order), the store and its endpoint are as they were."""
    r = shared_service.request("GET", EP, world.key)
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()["data"]] == [world.endpoint_id]
    ep = r.json()["data"][0]
    assert ep["url"] == "https://hooks.example.com/never"
    assert ep["events"] == ["seller.registered"]
    assert ep["enabled"] is True
    assert ep["header_names"] == []
    store = shared_service.admin("GET", f"/v1/stores/{world.store_id}").json()
    assert store["name"] == "Test Shop"
    assert store["plan"] == "business"


def test_off_plan_message_names_business_plan(shared_service: Service, world: World) -> None:
    r = shared_service.request("POST", EP, world.offplan_key, json=OK_EP)
    err = assert_error(r, 402, "plan_upgrade_required")
    assert "Business" in err["message"]
    assert "$199/month" in err["message"]


def test_method_not_allowed_names_allowed_methods(shared_service: Service, world: World) -> None:
    r = shared_service.request("PUT", f"{EP}/{world.endpoint_id}", world.key)
    assert_error(r, 405, "method_not_allowed")
    allowed = {m.strip() for m in r.headers.get("allow", "").split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed


def test_bodies_just_under_the_limits_are_accepted(shared_service: Service, world: World) -> None:
    """The caps are on the raw bytes: 256 KiB for publishing, 16 KiB elsewhere."""
    data = order(id="o" * 255, items=[item(title="t" * 1000)] * 230)
    body = json.dumps({"type": "order.created", "data": data}).encode()
    assert 200 * KIB < len(body) <= 256 * KIB
    r = shared_service.request(
        "POST", f"/v1/stores/{world.store_id}/events", shared_service.admin_token, content=body
    )
    assert r.status_code == 202, r.text[:500]
    # Padding in insignificant whitespace is still bytes of the body.
    body = b'{"description": "ok"' + b" " * (16 * KIB - 40) + b"}"
    r = shared_service.request("PATCH", f"{EP}/{world.endpoint_id}", world.key, content=body)
    assert r.status_code == 200, r.text[:500]
    r = shared_service.request(
        "PATCH", f"{EP}/{world.endpoint_id}", world.key, content=body[:-1] + b" " * 100 + b"}"
    )
    assert_error(r, 413, "payload_too_large")


@pytest.fixture(scope="module")
def private_key(private_refused_service: Service) -> str:
    return private_refused_service.create_store()[1]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_address_refused(
    private_refused_service: Service, private_key: str, url: str, request: Any
) -> None:
    r = private_refused_service.request(
        "POST", EP, private_key, json={"url": url, "events": ["order.created"]}
    )
    assert_error(r, 422, "validation_error", request.node.callspec.id)
