"""The SDK (sync and async) against the running service, the HTTPS receiver and the examples."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import sqlite3
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trustme
import uvicorn

from prometora_webhooks.client import (
    APIConnectionError,
    APIError,
    AsyncClient,
    AsyncEndpoints,
    AsyncEvents,
    AsyncStores,
    AuthenticationError,
    Client,
    Endpoints,
    Events,
    NotFoundError,
    PermissionDeniedError,
    PlanUpgradeRequiredError,
    PrometoraError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    Stores,
    ValidationError,
)
from prometora_webhooks.receiver import Reason, WebhookVerificationError, verify
from tests.support.api_helpers import module_receiver, module_service, unique_path
from tests.support.receiver import Receiver, wait_until
from tests.support.service import ORDER, SELLER, Service, free_port

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = RetryPolicy(backoff=0.05, max_backoff=0.2)

shared_service = module_service()
shared_receiver = module_receiver()


@pytest.fixture
def admin(shared_service: Service) -> Iterator[Client]:
    with Client(shared_service.base_url, shared_service.admin_token, retries=FAST) as c:
        yield c


def _store(admin: Client, plan: str = "business") -> tuple[str, Client]:
    store = admin.stores.create("SDK Shop", plan)
    assert store.api_key is not None
    return store.id, Client(admin._target.base_url, store.api_key, retries=FAST)


def _succeeded(c: Client, endpoint_id: str, count: int) -> list[Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (
            sum(a.succeeded for a in c.endpoints.deliveries(endpoint_id, limit=100).data) >= count
        ),
        20,
        f"{count} successful attempts",
        lambda: c.endpoints.deliveries(endpoint_id, limit=100).data,
    )


async def _await_until(check: Callable[[], Awaitable[T | None]], timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# -- the full flow -----------------------------------------------------------------------------


def test_sync_full_flow(admin: Client, shared_receiver: Receiver) -> None:
    path = unique_path("sdk")
    store = admin.stores.create("Jane's Ceramics", "business")
    assert store.id.startswith("str_")
    assert store.api_key
    assert store.api_key.startswith("sk_")
    assert store.api_key not in repr(store)
    assert admin.stores.get(store.id).name == "Jane's Ceramics"
    assert admin.stores.update(store.id, name="Jane's Pottery").name == "Jane's Pottery"
    types = {t.name for t in admin.event_types()}
    assert {"order.created", "seller.registered"} <= types

    with Client(admin._target.base_url, store.api_key, retries=FAST) as shop:
        ep = shop.endpoints.create(
            shared_receiver.url(path), ["order.created", "seller.registered"], description="sdk"
        )
        assert ep.id.startswith("we_")
        assert ep.secret
        assert ep.secret.startswith("whsec_")
        assert ep.secret not in repr(ep)
        assert shop.endpoints.secret(ep.id) == ep.secret
        assert shop.endpoints.get(ep.id).description == "sdk"
        assert [e.id for e in shop.endpoints.list().data] == [ep.id]

        event = admin.events.publish(store.id, "order.created", ORDER)
        assert event.id.startswith("evt_")
        assert not event.replayed
        assert event.created.tzinfo is not None
        (got,) = shared_receiver.wait_for(1, path)
        verified = verify(got.body, got.headers, ep.secret)
        assert verified == {
            "id": event.id,
            "type": "order.created",
            "created": event.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": ORDER,
        }
        new_secret = shop.endpoints.rotate_secret(ep.id)
        assert new_secret != ep.secret
        assert shop.endpoints.secret(ep.id) == new_secret
        with pytest.raises(WebhookVerificationError) as info:
            verify(got.body, got.headers, new_secret)  # signed before the rotation
        assert info.value.reason is Reason.SIGNATURE_MISMATCH

        # After a rotation each delivery carries both signatures: either secret verifies.
        queued = shop.endpoints.send_test(ep.id, "seller.registered")
        assert queued.event_id
        assert queued.event_id.startswith("evt_")
        shop.endpoints.resend(ep.id, event.id)
        received = shared_receiver.wait_for(3, path)
        for r in received[1:]:
            assert len(r.headers["webhook-signature"].split()) == 2
            assert verify(r.body, r.headers, ep.secret) == verify(r.body, r.headers, new_secret)
        by_id = {verify(r.body, r.headers, new_secret)["id"] for r in received[1:]}
        assert by_id == {queued.event_id, event.id}  # a resend keeps the event's id

        attempts = _succeeded(shop, ep.id, 3)
        assert {a.trigger for a in attempts} == {"scheduled", "manual"}
        assert all(a.http_status == 200 and a.endpoint_id == ep.id for a in attempts)
        assert attempts[0].attempted_at >= attempts[-1].attempted_at  # newest first

        disabled = shop.endpoints.update(ep.id, enabled=False, description="paused")
        assert (disabled.enabled, disabled.disabled_reason) == (False, "manual")
        assert disabled.description == "paused"
        shop.endpoints.delete(ep.id)
        with pytest.raises(NotFoundError):
            shop.endpoints.get(ep.id)

    rotated = admin.stores.rotate_api_key(store.id)
    assert rotated.api_key
    assert rotated.api_key != store.api_key
    with Client(admin._target.base_url, store.api_key, retries=FAST) as old:
        with pytest.raises(AuthenticationError) as err:
            old.endpoints.list()
        assert (err.value.status, err.value.code) == (401, "unauthorized")


async def test_async_full_flow(shared_service: Service, shared_receiver: Receiver) -> None:
    path = unique_path("async")
    async with AsyncClient(
        shared_service.base_url, shared_service.admin_token, retries=FAST
    ) as admin:
        store = await admin.stores.create("Async Shop", "business")
        shop = admin.with_store(store.id)  # admin token acting for the store
        ep = await shop.endpoints.create(shared_receiver.url(path), ["seller.registered"])
        assert ep.secret is not None
        assert (await shop.endpoints.get(ep.id)).url == shared_receiver.url(path)

        event = await admin.events.publish(store.id, "seller.registered", SELLER)
        got = await asyncio.to_thread(shared_receiver.wait_for, 1, path)
        assert verify(got[0].body, got[0].headers, ep.secret)["id"] == event.id

        async def delivered() -> list[Any]:
            page = await shop.endpoints.deliveries(ep.id)
            return [a for a in page.data if a.succeeded]

        (attempt,) = await _await_until(delivered)
        assert (attempt.event_id, attempt.event_type, attempt.attempt) == (
            event.id,
            "seller.registered",
            1,
        )
        assert [a.id async for a in shop.endpoints.iter_deliveries(ep.id)] == [attempt.id]

        with pytest.raises(NotFoundError):
            await shop.endpoints.resend(ep.id, "evt_doesnotexist")
        await shop.endpoints.delete(ep.id)
        assert [e async for e in shop.endpoints.iter_all()] == []
    await shop.aclose()  # a view does not close the shared connections
    assert admin._http.is_closed


# -- publishing ---------------------------------------------------------------------------------


def test_publish_with_an_idempotency_key_replays(admin: Client) -> None:
    store_id, _ = _store(admin)
    first = admin.events.publish(store_id, "order.created", ORDER, idempotency_key="ord_1:created")
    changed = {**ORDER, "total": 1}
    again = admin.events.publish(
        store_id, "order.created", changed, idempotency_key="ord_1:created"
    )
    assert not first.replayed
    assert again.replayed
    assert (again.id, again.data) == (first.id, ORDER)
    other = admin.events.publish(store_id, "order.created", ORDER)
    assert other.id != first.id  # no key given: a fresh one per call


def test_recover_resends_what_was_missed(admin: Client, shared_receiver: Receiver) -> None:
    path = unique_path("recover")
    store_id, shop = _store(admin)
    ep = shop.endpoints.create(shared_receiver.url(path), ["order.created"])
    assert ep.secret is not None
    since = datetime.now(UTC) - timedelta(seconds=5)
    shop.endpoints.update(ep.id, enabled=False)
    missed = admin.events.publish(store_id, "order.created", ORDER)
    assert shop.endpoints.update(ep.id, enabled=True).enabled
    assert shop.endpoints.recover(ep.id, since) == 1
    (got,) = shared_receiver.wait_for(1, path)
    assert verify(got.body, got.headers, ep.secret)["id"] == missed.id
    _succeeded(shop, ep.id, 1)
    assert shop.endpoints.recover(ep.id, since) == 0  # nothing left to recover


class LoseFirstAnswer(httpx.BaseTransport):
    """Sends the matching request, then 'loses' the answer once (as a reset connection would)."""

    def __init__(self, match: Callable[[httpx.Request], bool]) -> None:
        self.inner = httpx.HTTPTransport()
        self.match = match
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.match(request):
            self.seen.append(request)
            if len(self.seen) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset (simulated)", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_publish_retried_after_a_lost_answer_is_published_once(
    shared_service: Service, admin: Client, shared_receiver: Receiver
) -> None:
    path = unique_path("lost")
    store_id, shop = _store(admin)
    ep = shop.endpoints.create(shared_receiver.url(path), ["order.created"])
    transport = LoseFirstAnswer(lambda r: r.url.path.endswith("/events"))
    with Client(
        shared_service.base_url,
        shared_service.admin_token,
        retries=FAST,
        http_client=httpx.Client(transport=transport),
    ) as flaky:
        event = flaky.events.publish(store_id, "order.created", ORDER)
    keys = [r.headers["idempotency-key"] for r in transport.seen]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert event.replayed  # the server had already accepted the first try
    _succeeded(shop, ep.id, 1)
    assert ep.secret is not None
    delivered = [verify(r.body, r.headers, ep.secret)["id"] for r in shared_receiver.received(path)]
    assert delivered == [event.id]


class AnswerFirst(httpx.BaseTransport):
    """Answers the first matching request itself (e.g. a 503 from a proxy), forwards the rest."""

    def __init__(self, match: Callable[[httpx.Request], bool], response: httpx.Response) -> None:
        self.inner = httpx.HTTPTransport()
        self.match = match
        self.response = response
        self.hits = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.match(request):
            self.hits += 1
            if self.hits == 1:
                return self.response
        return self.inner.handle_request(request)


def _unavailable() -> httpx.Response:
    return httpx.Response(
        503,
        headers={"Retry-After": "0"},
        json={"error": {"code": "unavailable", "message": "database temporarily unavailable"}},
    )


def test_5xx_is_retried_only_where_safe(shared_service: Service, admin: Client) -> None:
    _, shop = _store(admin)
    token = shop._target.token

    get = AnswerFirst(lambda r: r.method == "GET", _unavailable())
    with Client(
        shared_service.base_url, token, retries=FAST, http_client=httpx.Client(transport=get)
    ) as c:
        assert c.endpoints.list().data == []
    assert get.hits == 2

    post = AnswerFirst(lambda r: r.method == "POST", _unavailable())
    with (
        Client(
            shared_service.base_url, token, retries=FAST, http_client=httpx.Client(transport=post)
        ) as c,
        pytest.raises(ServerError) as info,
    ):
        c.endpoints.create("https://example.com/hook", ["order.created"])
    assert post.hits == 1  # creating twice could make two endpoints: not retried
    assert (info.value.status, info.value.code) == (503, "unavailable")


def test_connection_errors(free_tcp_port: int) -> None:
    with Client(f"http://127.0.0.1:{free_tcp_port}", "t", retries=FAST) as c:
        started = time.monotonic()
        with pytest.raises(APIConnectionError) as info:
            c.stores.get("str_x")
    assert info.value.status is None
    assert info.value.code == "connection_error"
    assert isinstance(info.value, PrometoraError)
    assert time.monotonic() - started < 5


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


# -- errors -------------------------------------------------------------------------------------


def test_error_mapping(admin: Client, shared_service: Service) -> None:
    store_id, shop = _store(admin)
    _, free_shop = _store(admin, plan="starter")

    with pytest.raises(NotFoundError) as nf:
        shop.endpoints.get("we_doesnotexist")
    assert (nf.value.status, nf.value.code) == (404, "not_found")
    assert nf.value.message

    with pytest.raises(NotFoundError):
        admin.stores.get("str_doesnotexist")

    with pytest.raises(ValidationError) as unknown:
        admin.events.publish(store_id, "order.exploded", {})
    assert (unknown.value.status, unknown.value.code) == (422, "validation_error")

    with pytest.raises(ValidationError):
        shop.endpoints.create("http://example.com/plain-http", ["order.created"])

    with pytest.raises(ValidationError) as no_store:
        admin.endpoints.list()  # the admin token without a store id
    assert "store_id" in no_store.value.message

    with pytest.raises(PlanUpgradeRequiredError) as plan:
        free_shop.endpoints.create("https://example.com/hook", ["order.created"])
    assert (plan.value.status, plan.value.code) == (402, "plan_upgrade_required")
    assert "Business" in plan.value.message

    with pytest.raises(PermissionDeniedError) as forbidden:
        shop.stores.get(store_id)  # a store key on a platform route
    assert forbidden.value.status == 403

    with (
        Client(shared_service.base_url, "sk_wrong", retries=FAST) as nobody,
        pytest.raises(AuthenticationError),
    ):
        nobody.event_types()

    for err in (nf.value, unknown.value, plan.value, forbidden.value):
        assert isinstance(err, APIError)
        assert isinstance(err, PrometoraError)
        assert str(err).startswith(f"HTTP {err.status} {err.code}: ")


def test_pagination(admin: Client, shared_receiver: Receiver) -> None:
    _, shop = _store(admin)
    created = [
        shop.endpoints.create(shared_receiver.url(unique_path("page")), ["order.created"]).id
        for _ in range(5)
    ]
    first = shop.endpoints.list(limit=2)
    assert len(first.data) == 2
    assert first.has_more
    assert first.next_cursor == first.data[-1].id
    listed = [e.id for e in shop.endpoints.iter_all(page_size=2)]
    assert sorted(listed) == sorted(created)
    assert len(set(listed)) == 5
    last = shop.endpoints.list(limit=100)
    assert not last.has_more
    assert last.next_cursor is None


# -- rate limits --------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after(make_service: Callable[..., Service]) -> None:
    svc = make_service(rate_limit="1", rate_limit_burst="1")  # one request a second per key
    svc.start()
    key_sync, key_impatient, key_async = (svc.create_store()[1] for _ in range(3))

    statuses: list[int] = []
    http = httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
    with Client(svc.base_url, key_sync, http_client=http) as shop:
        assert shop.endpoints.list().data == []
        started = time.monotonic()
        assert shop.endpoints.list().data == []  # over the limit: 429, waited, retried
        waited = time.monotonic() - started
    http.close()
    assert statuses == [200, 429, 200]
    assert waited >= 0.9

    with Client(svc.base_url, key_impatient, retries=RetryPolicy(max_retries=0)) as impatient:
        impatient.endpoints.list()
        with pytest.raises(RateLimitedError) as info:
            impatient.endpoints.list()
    assert (info.value.status, info.value.code) == (429, "rate_limited")
    assert info.value.retry_after == 1

    async def async_side() -> list[int]:
        seen: list[int] = []

        async def hook(r: httpx.Response) -> None:
            seen.append(r.status_code)

        async with (
            httpx.AsyncClient(event_hooks={"response": [hook]}) as ahttp,
            AsyncClient(svc.base_url, key_async, http_client=ahttp) as ashop,
        ):
            await ashop.endpoints.list()
            await ashop.endpoints.list()
        return seen

    assert asyncio.run(async_side()) == [200, 429, 200]


# -- the FastAPI receiver example ---------------------------------------------------------------


def _load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ThreadedServer:
    """A uvicorn server over HTTPS (trustme certificate) in a thread."""

    def __init__(self, app: Any, ca: trustme.CA, tmp: Path) -> None:
        cert = ca.issue_cert("localhost", "127.0.0.1")
        certfile, keyfile = tmp / "cert.pem", tmp / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "uvicorn started")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_fastapi_receiver_example(
    admin: Client, ca: trustme.CA, ca_path: str, tmp_path: Path
) -> None:
    example = _load_example("fastapi_receiver")
    store_id, shop = _store(admin)
    port_holder: dict[str, str] = {}
    db = tmp_path / "received.db"
    app = example.create_app(secret=lambda: port_holder["secret"], db_path=str(db))
    with ThreadedServer(app, ca, tmp_path) as server:
        url = f"https://localhost:{server.port}/webhooks/prometora"
        ep = shop.endpoints.create(url, ["order.created", "seller.registered"])
        assert ep.secret is not None
        port_holder["secret"] = ep.secret

        event = admin.events.publish(store_id, "order.created", ORDER)
        admin.events.publish(store_id, "seller.registered", SELLER)
        _succeeded(shop, ep.id, 2)
        shop.endpoints.resend(ep.id, event.id)  # the same webhook-id again: a duplicate
        attempts = _succeeded(shop, ep.id, 3)
        assert '"duplicate"' in attempts[0].response_body

        # Forged and stale requests never reach the handler.
        with httpx.Client(verify=ssl.create_default_context(cafile=ca_path)) as h:
            forged = h.post(
                url,
                content=b'{"id": "evt_x", "type": "order.created", "created": "", "data": {}}',
                headers={
                    "webhook-id": "evt_x",
                    "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
                    "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                },
            )
        assert forged.status_code == 400
        assert "signature_mismatch" in forged.text

    with sqlite3.connect(db) as conn:
        processed = conn.execute("SELECT webhook_id FROM processed_webhooks").fetchall()
        orders = conn.execute("SELECT order_id, total, email FROM orders").fetchall()
        sellers = conn.execute("SELECT seller_id FROM sellers").fetchall()
    conn.close()
    assert len(processed) == 2
    assert (event.id,) in processed
    assert orders == [(ORDER["id"], ORDER["total"], ORDER["customer"]["email"])]
    assert sellers == [(SELLER["id"],)]


def test_sync_and_async_clients_offer_the_same_calls() -> None:
    pairs = [
        (Client, AsyncClient),
        (Stores, AsyncStores),
        (Events, AsyncEvents),
        (Endpoints, AsyncEndpoints),
    ]
    for sync, aio in pairs:
        public = {n for n in dir(sync) if not n.startswith("_")} - {"close"}
        assert public == {n for n in dir(aio) if not n.startswith("_")} - {"aclose"}
        for name in public:
            s, a = getattr(sync, name), getattr(aio, name)
            if callable(s):
                params = inspect.signature(s).parameters.keys()
                assert params == inspect.signature(a).parameters.keys(), name
