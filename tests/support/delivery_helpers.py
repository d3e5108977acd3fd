"""Helpers for the delivery integration tests: a shared service pool, waits and checks.

Starting `serve` costs a second or two, so tests share running services (`service_pool`:
one per database kind and set of settings, for the whole session). Every test still gets its own
store (stores isolate endpoints, events and logs) and its own `receiver`, so nothing a test
does is visible to another. Tests that need special settings ask the pool for them
(`service_pool.get(retry_delays="")`): each distinct set of settings gets its own database
and its own process. Tests that kill or restart the service use `make_service` instead.

This module is a pytest plugin: a test module that wants its fixtures says::

    pytest_plugins = ["tests.support.delivery_helpers"]

(so `service_pool` is defined once, and its services are shared across those modules). The
modules also import helpers from here before pytest registers it as a plugin, so its asserts
are not rewritten: PYTEST_DONT_REWRITE (they carry their own messages).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DATABASES
from tests.support.pgserver import PgServer
from tests.support.receiver import Received, Receiver, wait_until
from tests.support.service import Service, base_env

# Slack on top of a retry's jittered delay: the recorder's group commit, the worker's poll
# interval (0.1 s in tests) and two busy CPUs. Lower bounds get none; upper bounds get this.
SCHEDULING_SLACK_S = 1.5
JITTER = 0.10
# How long past the latest moment an unwanted retry would have arrived a test keeps watching.
ABSENCE_SLACK_S = 0.7


# Known service bugs in files this suite's authors may not edit (see the report that came with
# these tests); the affected tests are strict xfails on the database where the bug shows.
class ServicePool:
    """One database kind; one running `serve` (with its own database) per set of settings."""

    def __init__(self, db_kind: str, pg: PgServer | None, ca_path: str, workdir: Path) -> None:
        self.db_kind = db_kind
        self._pg = pg
        self._ca_path = ca_path
        self._workdir = workdir
        self._services: dict[tuple[tuple[str, str], ...], Service] = {}
        self._databases: list[str] = []

    def _new_db_url(self, n: int) -> str:
        if self._pg is None:
            return f"sqlite:///{self._workdir / f'pool{n}.db'}"
        name = self._pg.create_database(template=self._pg.template)  # type: ignore[attr-defined]
        self._databases.append(name)
        return self._pg.url(name)

    def get(self, **env: str) -> Service:
        """The running service with these overrides (keys without the PROMETORA_WEBHOOKS_)."""
        key = tuple(sorted(env.items()))
        svc = self._services.get(key)
        if svc is None:
            n = len(self._services)
            secret_key = base64.b64encode(secrets.token_bytes(32)).decode()
            e = base_env(self._new_db_url(n), secret_key, self._ca_path)
            e.update({f"PROMETORA_WEBHOOKS_{k.upper()}": v for k, v in env.items()})
            workdir = self._workdir / f"svc{n}"
            workdir.mkdir()
            svc = Service(workdir, e)
            self._services[key] = svc
            svc.start()
        else:
            proc = svc.procs[-1]
            assert proc.popen is not None
            assert proc.popen.poll() is None, f"shared service died:\n{svc.logs()[-4000:]}"
        return svc

    def close(self) -> None:
        for svc in self._services.values():
            svc.stop_all()
        if self._pg is not None:
            for name in self._databases:
                self._pg.drop_database(name)


@pytest.fixture(scope="session", params=DATABASES)
def service_pool(
    request: pytest.FixtureRequest, ca_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServicePool]:
    kind = str(request.param)
    pg = request.getfixturevalue("pg_server") if kind == "postgresql" else None
    pool = ServicePool(kind, pg, ca_path, tmp_path_factory.mktemp(f"pool-{kind}"))
    yield pool
    pool.close()


@dataclass
class Shop:
    """A store on a running service, with its API key."""

    svc: Service
    id: str
    key: str

    def endpoint(
        self, url: str, events: Iterable[str] = ("order.created",), **extra: Any
    ) -> dict[str, Any]:
        return self.svc.create_endpoint(self.key, url, events, **extra)

    def publish(self, type_: str = "order.created", **kw: Any) -> httpx.Response:
        """Publish and assert the 202; the response's bytes are the event's exact body."""
        r = self.svc.publish(self.id, type_, **kw)
        assert r.status_code == 202, r.text
        return r

    def get(self, endpoint_id: str) -> dict[str, Any]:
        return self.svc.endpoint(self.key, endpoint_id)

    def attempts(self, endpoint_id: str) -> list[dict[str, Any]]:
        """The endpoint's whole log (up to 100), newest first."""
        return self.svc.attempts(self.key, endpoint_id)

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A request with the store's API key."""
        return self.svc.request(method, path, self.key, **kw)

    def patch(self, endpoint_id: str, **changes: Any) -> dict[str, Any]:
        r = self.call("PATCH", f"/v1/endpoints/{endpoint_id}", json=changes)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def set_plan(self, plan: str) -> None:
        r = self.svc.admin("PATCH", f"/v1/stores/{self.id}", json={"plan": plan})
        assert r.status_code == 200, r.text
        assert r.json()["plan"] == plan

    def wait_endpoint(
        self,
        endpoint_id: str,
        cond: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 15,
    ) -> dict[str, Any]:
        return wait_until(  # type: ignore[no-any-return]
            lambda: cond(self.get(endpoint_id)), timeout, what, lambda: self.get(endpoint_id)
        )

    def wait_attempts(
        self,
        endpoint_id: str,
        cond: Callable[[list[dict[str, Any]]], bool],
        what: str,
        timeout: float = 15,
    ) -> list[dict[str, Any]]:
        """Poll the endpoint's log until ``cond(attempts)`` holds; return the attempts."""
        return wait_until(  # type: ignore[no-any-return]
            lambda: cond(self.attempts(endpoint_id)),
            timeout,
            what,
            lambda: self.attempts(endpoint_id),
        )

    def cleanup(self) -> None:
        """Delete the store's endpoints: no retry of this test outlives it on a shared service."""
        try:
            r = self.call("GET", "/v1/endpoints?limit=100")
            for ep in r.json()["data"]:
                self.call("DELETE", f"/v1/endpoints/{ep['id']}")
        except (httpx.HTTPError, KeyError):
            pass  # the service is gone: nothing of this test can outlive it


@pytest.fixture
def open_shop() -> Iterator[Callable[..., Shop]]:
    """Open a store on a service: ``open_shop(svc, plan="business")``; cleaned up after."""
    made: list[Shop] = []

    def make(svc: Service, plan: str = "business") -> Shop:
        store_id, key = svc.create_store(plan=plan)
        shop = Shop(svc, store_id, key)
        made.append(shop)
        return shop

    yield make
    for shop in made:
        shop.cleanup()


# The shared service's settings: the harness's defaults (DELIVERY_TIMEOUT=2, DISABLE_AFTER
# 10) with shorter retries, so tests that wait for (or out) a retry stay quick.
RETRY_DELAYS = (0.5, 1.0)
SHARED_SETTINGS = {"retry_delays": ",".join(str(d) for d in RETRY_DELAYS)}
DELIVERY_TIMEOUT = 2.0
DISABLE_AFTER = 10


@pytest.fixture
def svc(service_pool: ServicePool) -> Service:
    """The shared `serve` with SHARED_SETTINGS (on each database kind)."""
    return service_pool.get(**SHARED_SETTINGS)


@pytest.fixture
def shop(svc: Service, open_shop: Callable[..., Shop]) -> Shop:
    """A fresh Business store on the shared service."""
    return open_shop(svc)


# -- waits and checks -------------------------------------------------------------------------
def assert_stays(count: Callable[[], int], expected: int, until: float, what: str) -> None:
    """Assert ``count()`` stays at ``expected`` until the monotonic time ``until``.

    Only for asserting that something does *not* happen; ``until`` is past the moment the
    unwanted thing would have come (see ``retry_due_by``). Fails as soon as the count moves.
    """
    while True:
        n = count()
        assert n == expected, f"{what}: expected {expected}, got {n}"
        if time.monotonic() > until:
            return
        time.sleep(0.05)


def retry_due_by(failed_at: float, delay: float) -> float:
    """The monotonic time by which a retry ``delay`` s after an attempt that arrived at
    ``failed_at`` would have arrived: the delay with its +10 % jitter, plus slack for the
    response, the recorder's commit and the worker's 0.1 s poll."""
    return failed_at + delay * (1 + JITTER) + ABSENCE_SLACK_S


def retry_window(delay: float) -> tuple[float, float]:
    """(strict lower bound, generous upper bound) of the gap before a retry of ``delay`` s."""
    return delay * (1 - JITTER), delay * (1 + JITTER) + SCHEDULING_SLACK_S


# -- signatures --------------------------------------------------------------------------------
def headers(received: Received) -> dict[str, str]:
    """The request's headers with lower-case names."""
    return {k.lower(): v for k, v in received.headers.items()}


def signatures(received: Received) -> list[str]:
    return headers(received)["webhook-signature"].split(" ")


def expected_signature(secret: str, received: Received) -> str:
    """Our own HMAC: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    h = headers(received)
    msg = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + received.body
    return "v1," + base64.b64encode(hmac.digest(key, msg, hashlib.sha256)).decode()


def event_ids(requests: list[Received]) -> list[str]:
    return [headers(r)["webhook-id"] for r in requests]


def receiver_count(receiver: Receiver, path: str) -> Callable[[], int]:
    return lambda: len(receiver.received(path))
