"""PostgreSQL scale-out: one API process and several worker processes against one database."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.pgserver import PgServer
from tests.support.receiver import Receiver, wait_until
from tests.support.service import ORDER, SELLER, Service, base_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
_local = threading.local()


def _client() -> httpx.Client:
    if not hasattr(_local, "client"):
        _local.client = httpx.Client(timeout=10)
    return _local.client  # type: ignore[no-any-return]


@pytest.fixture
def pg_service(
    pg_server: PgServer, secret_key: str, ca_path: str, tmp_path: Path
) -> Iterator[Callable[..., Service]]:
    made: list[tuple[Service, str]] = []

    def make(**env: str) -> Service:
        name = pg_server.create_database(template=pg_server.template)  # type: ignore[attr-defined]
        e = base_env(pg_server.url(name), secret_key, ca_path)
        e.update({f"PROMETORA_WEBHOOKS_{k.upper()}": v for k, v in env.items()})
        workdir = tmp_path / f"pg{len(made)}"
        workdir.mkdir()
        svc = Service(workdir, e)
        made.append((svc, name))
        return svc

    yield make
    for svc, name in made:
        svc.stop_all()
        pg_server.drop_database(name)


def _setup_endpoints(svc: Service, receiver: Receiver, n: int) -> tuple[str, dict[str, str]]:
    """n endpoints: even ones take order.created, odd ones seller.registered."""
    store_id, key = svc.create_store()
    paths: dict[str, str] = {}
    for i in range(n):
        event = "order.created" if i % 2 == 0 else "seller.registered"
        path = f"/ep{i}"
        svc.create_endpoint(key, receiver.url(path), [event])
        paths[path] = event
    return store_id, paths


def _publish_all(
    svc: Service, store_id: str, n: int, on_progress: Callable[[int], None] | None = None
) -> dict[str, str]:
    """Publish n events (alternating types) with 8 concurrent clients; retry through outages.

    Each event has its own Idempotency-Key, so a retried publish never makes a second event.
    Returns event id → type for every accepted event.
    """
    accepted: dict[str, str] = {}
    lock = threading.Lock()
    done = [0]

    def one(i: int) -> None:
        type_ = "order.created" if i % 2 == 0 else "seller.registered"
        data = ORDER if type_ == "order.created" else SELLER
        key = f"evt-{i}-{uuid.uuid4().hex}"
        client = _client()
        if True:
            for _ in range(600):
                try:
                    r = client.post(
                        f"{svc.base_url}/v1/stores/{store_id}/events",
                        json={"type": type_, "data": data},
                        headers={
                            "Authorization": f"Bearer {svc.admin_token}",
                            "Idempotency-Key": key,
                        },
                    )
                except httpx.HTTPError:
                    threading.Event().wait(0.1)
                    continue
                if r.status_code in (200, 202):
                    with lock:
                        accepted[r.json()["id"]] = type_
                        done[0] += 1
                        if on_progress:
                            on_progress(done[0])
                    return
                assert r.status_code == 503, r.text
                threading.Event().wait(0.1)
        raise AssertionError(f"event {i} never accepted")

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))
    print(f"\npublished {n} events in {time.monotonic() - started:.1f}s")
    return accepted


def _expected(accepted: dict[str, str], paths: dict[str, str]) -> set[tuple[str, str]]:
    return {(p, ev) for ev, t in accepted.items() for p, pt in paths.items() if pt == t}


def _received(receiver: Receiver) -> Counter[tuple[str, str]]:
    return Counter((r.path, r.headers["webhook-id"]) for r in receiver.received())


def _wait_all(receiver: Receiver, expected: set[tuple[str, str]], timeout: float) -> None:
    """Wait (cheaply: the receiver shares this process) until every delivery has arrived."""
    started = time.monotonic()
    wait_until(lambda: receiver.count() >= len(expected), timeout, "deliveries", interval=0.5)
    print(f"all {len(expected)} deliveries arrived {time.monotonic() - started:.1f}s later")
    wait_until(
        lambda: set(_received(receiver)) >= expected,
        60,
        "every delivery",
        lambda: sorted(expected - set(_received(receiver)))[:20],
        interval=1,
    )


def test_three_workers_deliver_everything_exactly_once(
    pg_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = pg_service(worker_concurrency="64", delivery_timeout="10", disable_after="1000")
    svc.start("api")
    workers = [svc.spawn("worker", name=f"worker{i}") for i in range(3)]
    store_id, paths = _setup_endpoints(svc, receiver, 20)
    accepted = _publish_all(svc, store_id, 2000)
    expected = _expected(accepted, paths)
    assert len(expected) == 20_000

    _wait_all(receiver, expected, 240)
    got = _received(receiver)
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} deliveries made twice with no worker dying"
    assert set(got) == expected
    # every worker took part
    for w in workers:
        assert w.popen is not None
        assert w.popen.poll() is None, w.log()[-2000:]


def test_worker_killed_and_postgres_restarted_mid_run_loses_nothing(
    pg_service: Callable[..., Service], receiver: Receiver, pg_server: PgServer
) -> None:
    svc = pg_service(worker_concurrency="64", delivery_timeout="5", disable_after="1000")
    svc.start("api")
    workers = [svc.spawn("worker", name=f"worker{i}") for i in range(3)]
    store_id, paths = _setup_endpoints(svc, receiver, 20)
    for p in paths:  # slow answers keep attempts in flight when the worker dies
        receiver.script(p, statuses=[200], delay=0.05)
    events: list[str] = []

    def chaos(done: int) -> None:
        if done == 700 and not events:
            events.append("kill")
            workers[0].kill()
        elif done == 1400 and len(events) == 1:
            events.append("pg-restart")
            threading.Thread(target=pg_server.restart, daemon=True).start()

    accepted = _publish_all(svc, store_id, 2000, chaos)
    assert events == ["kill", "pg-restart"]
    expected = _expected(accepted, paths)
    _wait_all(receiver, expected, 300)
    got = _received(receiver)
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    print(
        f"\nchaos run: {len(expected)} deliveries, {duplicates} duplicates "
        f"(attempts in flight at the SIGKILL or cut off by the PostgreSQL restart)"
    )
    # at most what one worker can have in flight, plus what the restart cut off for all three
    assert duplicates <= 4 * 64
    assert set(got) == expected
    for w in workers[1:]:
        assert w.popen is not None
        assert w.popen.poll() is None, w.log()[-3000:]
