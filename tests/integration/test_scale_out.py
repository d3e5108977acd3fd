"""PostgreSQL scale-out: one API process and several worker processes against one database."""

from __future__ import annotations

import re
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
from tests.support.service import ORDER, SELLER, Proc, Service, base_env, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
CONCURRENCY = 64  # WORKER_CONCURRENCY of the chaos test's workers
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


def _setup_endpoints(
    svc: Service, receiver: Receiver, n: int
) -> tuple[str, dict[str, str], dict[str, str]]:
    """n endpoints: even ones take order.created, odd ones seller.registered.

    Returns the store id, receiver path → event type, endpoint id → receiver path."""
    store_id, key = svc.create_store()
    paths: dict[str, str] = {}
    path_of: dict[str, str] = {}
    for i in range(n):
        event = "order.created" if i % 2 == 0 else "seller.registered"
        path = f"/ep{i}"
        ep = svc.create_endpoint(key, receiver.url(path), [event])
        paths[path] = event
        path_of[ep["id"]] = path
    return store_id, paths, path_of


def _metric(text: str, name: str, labels: str) -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def _worker_attempts(port: int) -> tuple[float, float]:
    """(succeeded, failed) scheduled attempts one worker recorded, from its --metrics-port."""
    text = _client().get(f"http://127.0.0.1:{port}/metrics").text
    name = "prometora_webhooks_attempts_total"
    return (
        _metric(text, name, '{outcome="succeeded",trigger="scheduled"}'),
        _metric(text, name, '{outcome="failed",trigger="scheduled"}'),
    )


def _db_name(svc: Service) -> str:
    return svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"].rsplit("/", 1)[1]


def _lease_prefix(proc: Proc) -> str:
    """A worker's lease tokens start with its pid in hex (see delivery/worker.py)."""
    assert proc.popen is not None
    return f"{proc.popen.pid:x}-"


def _leased_by(pg: PgServer, db: str, proc: Proc) -> list[tuple[str, str]]:
    """(endpoint id, event id) of the queue rows a worker process holds a lease on."""
    out = pg.psql(
        "SELECT endpoint_id || ' ' || event_id FROM deliveries "
        f"WHERE lease_token LIKE '{_lease_prefix(proc)}%'",
        db=db,
    )
    return [(a, b) for a, b in (line.split(" ") for line in out.splitlines() if line)]


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
    ports = [free_port() for _ in range(3)]
    workers = [
        svc.spawn("worker", "--metrics-port", str(port), name=f"worker{i}")
        for i, port in enumerate(ports)
    ]
    store_id, paths, _ = _setup_endpoints(svc, receiver, 20)
    accepted = _publish_all(svc, store_id, 2000)
    expected = _expected(accepted, paths)
    assert len(expected) == 20_000

    _wait_all(receiver, expected, 240)
    got = _received(receiver)
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} deliveries made twice with no worker dying"
    assert set(got) == expected
    for w in workers:
        assert w.popen is not None
        assert w.popen.poll() is None, w.log()[-2000:]
    # Every worker took part, and together they recorded each delivery once (each process
    # counts the attempts it recorded; they reach the counter after the commit).
    wait_until(
        lambda: sum(_worker_attempts(p)[0] for p in ports) >= len(expected),
        30,
        "every attempt recorded",
        lambda: [_worker_attempts(p) for p in ports],
    )
    per_worker = [_worker_attempts(p) for p in ports]
    print(f"attempts (succeeded, failed) per worker: {per_worker}")
    assert sum(ok for ok, _ in per_worker) == len(expected)
    assert all(failed == 0 for _, failed in per_worker), per_worker
    assert all(ok > 0 for ok, _ in per_worker), f"a worker delivered nothing: {per_worker}"


def test_worker_killed_and_postgres_restarted_mid_run_loses_nothing(
    pg_service: Callable[..., Service], receiver: Receiver, pg_server: PgServer
) -> None:
    svc = pg_service(
        worker_concurrency=str(CONCURRENCY), delivery_timeout="5", disable_after="1000"
    )
    svc.start("api")
    workers = [svc.spawn("worker", name=f"worker{i}") for i in range(3)]
    store_id, paths, path_of = _setup_endpoints(svc, receiver, 20)
    for p in paths:  # slow answers keep attempts in flight when the worker dies
        receiver.script(p, statuses=[200], delay=0.05)
    events: list[str] = []
    db = _db_name(svc)
    held_at_kill: set[tuple[str, str]] = set()  # (path, event id) the killed worker held
    leased_at_restart: list[int] = []

    def chaos(done: int) -> None:
        if done == 700 and not events:
            events.append("kill")
            workers[0].kill()
            # Its leases stay until they run out (DELIVERY_TIMEOUT + 15 s): read them now.
            held_at_kill.update((path_of[e], ev) for e, ev in _leased_by(pg_server, db, workers[0]))
        elif done == 1400 and len(events) == 1:
            events.append("pg-restart")
            leased = pg_server.psql(
                "SELECT count(*) FROM deliveries WHERE lease_token IS NOT NULL "
                f"AND lease_token NOT LIKE '{_lease_prefix(workers[0])}%'",
                db=db,
            )
            leased_at_restart.append(int(leased))
            threading.Thread(target=pg_server.restart, daemon=True).start()

    accepted = _publish_all(svc, store_id, 2000, chaos)
    assert events == ["kill", "pg-restart"]
    expected = _expected(accepted, paths)
    _wait_all(receiver, expected, 300)
    got = _received(receiver)
    extra = {k: n - 1 for k, n in got.items() if n > 1}
    from_kill = sum(n for k, n in extra.items() if k in held_at_kill)
    other = sum(n for k, n in extra.items() if k not in held_at_kill)
    print(
        f"\nchaos run: {len(expected)} deliveries; the killed worker held {len(held_at_kill)} "
        f"leases; {from_kill} duplicates of those, {other} other duplicates (cut off by the "
        f"PostgreSQL restart; the live workers held {leased_at_restart} leases just before it)"
    )
    assert set(got) == expected
    # The kill hit work in flight, or it proves nothing about recovery.
    assert held_at_kill, "the killed worker held no lease at the SIGKILL"
    # Duplicates: only deliveries the killed worker held (each sent again at most once, or
    # twice if the restart also cut off its redelivery) ...
    over = {k: n for k, n in extra.items() if k in held_at_kill and n > 2}
    assert not over, f"deliveries the killed worker held, sent more than 3 times: {over}"
    # ... and what the restart cut off: what the live workers held just before it (in flight
    # or sent and not yet recorded), plus one full round of claims between that count and
    # the stop.
    bound = leased_at_restart[0] + 2 * CONCURRENCY
    assert other <= bound, f"{other} duplicates not explained by the SIGKILL (bound {bound})"
    for w in workers[1:]:
        assert w.popen is not None
        assert w.popen.poll() is None, w.log()[-3000:]


def test_the_first_publish_after_a_postgres_restart_is_accepted(
    pg_service: Callable[..., Service], pg_server: PgServer
) -> None:
    """The API tests each pooled connection as it takes it: the connections that a restart
    closed are replaced, instead of failing the next requests with 503."""
    svc = pg_service()
    svc.start("api")
    store_id, _ = svc.create_store()
    with ThreadPoolExecutor(4) as pool:  # several connections in the pool
        first = list(pool.map(lambda _: svc.publish(store_id, "order.created", ORDER), range(8)))
    assert [r.status_code for r in first] == [202] * 8, [r.text for r in first]
    pg_server.restart()
    after = [svc.publish(store_id, "order.created", ORDER) for _ in range(4)]
    assert [r.status_code for r in after] == [202] * 4, [r.text for r in after]
