"""Scenario 5, backlog: 1,000,000 pending deliveries (100,000 events x 10 endpoints, inserted
straight into the database with SQL: ``events`` and ``deliveries`` rows as
src/prometora_webhooks/storage/tables.py defines them, all due now), then the worker is started
and its RSS and drain rate are sampled for a window. The same is done with a small backlog;
the drain rates are compared (target: the large one within 80 % of the small one) and so are
the peak RSS (target: flat with backlog size, and under 250 MB).

SQLite: ``serve`` creates the endpoints, is stopped, the rows go in, ``serve`` starts again.
PostgreSQL: ``api`` creates the endpoints, the rows go in, one ``worker`` starts.
``--quick`` uses 100,000 deliveries. The receiver counts (and checks signatures) but keeps no
per-request records here.
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from . import procs
from .common import bench_key, order, random_run_id, ratio
from .context import Context
from .service import Service

RSS_TARGET_MB = 250


def _event_id() -> str:
    return "evt_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def _rows(
    store_id: str, endpoint_ids: list[str], n: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    import orjson

    now = int(time.time() * 1000)
    created = datetime.fromtimestamp(now / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = random_run_id()
    events: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    n_events = -(-n // len(endpoint_ids))
    for i in range(n_events):
        eid = _event_id()
        body = orjson.dumps(
            {
                "id": eid,
                "type": "order.created",
                "created": created,
                "data": order(bench_key(run, i)),
            }
        )
        # events: id, store_id, type, created_at, body, idempotency_key, kind
        events.append((eid, store_id, "order.created", now, body, None, "published"))
        for ep in endpoint_ids:
            if len(deliveries) < n:
                # deliveries: endpoint_id, event_id, attempt, trigger, available_at, lease_token
                deliveries.append((ep, eid, 1, "scheduled", now, None))
    return events, deliveries


def _insert_sqlite(
    path: str, events: list[tuple[Any, ...]], deliveries: list[tuple[Any, ...]]
) -> None:
    db = sqlite3.connect(path, timeout=60)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO events (id, store_id, type, created_at, body, idempotency_key, kind) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        db.executemany(
            "INSERT INTO deliveries (endpoint_id, event_id, attempt, trigger, available_at, "
            "lease_token) VALUES (?, ?, ?, ?, ?, ?)",
            deliveries,
        )
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


def _insert_pg(url: str, events: list[tuple[Any, ...]], deliveries: list[tuple[Any, ...]]) -> None:
    import asyncio

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "events",
                    records=events,
                    columns=[
                        "id",
                        "store_id",
                        "type",
                        "created_at",
                        "body",
                        "idempotency_key",
                        "kind",
                    ],
                )
                await conn.copy_records_to_table(
                    "deliveries",
                    records=deliveries,
                    columns=[
                        "endpoint_id",
                        "event_id",
                        "attempt",
                        "trigger",
                        "available_at",
                        "lease_token",
                    ],
                )
            await conn.execute("VACUUM ANALYZE events")
            await conn.execute("VACUUM ANALYZE deliveries")
        finally:
            await conn.close()

    asyncio.run(go())


def _drain(ctx: Context, n: int, window: float) -> dict[str, Any]:
    n_ep = 10
    svc = Service(ctx, ctx.db, workers=1, name=f"backlog-{ctx.db}")
    try:
        svc.start(api_only=ctx.db != "sqlite")  # SQLite: serve, stopped for the insert
        stores, eps = svc.setup_endpoints([f"/bl/{i}" for i in range(n_ep)])
        if ctx.db == "sqlite":
            svc.stop_workers()  # stops serve: the rows go in while nothing runs
        procs.log(f"backlog[{ctx.db}]: inserting {n} pending deliveries")
        t0 = time.monotonic()
        events, deliveries = _rows(stores[0], [e["id"] for e in eps], n)
        build_s = time.monotonic() - t0
        t1 = time.monotonic()
        if ctx.db == "sqlite":
            _insert_sqlite(svc.url.split(":///", 1)[1], events, deliveries)
        else:
            _insert_pg(svc.url, events, deliveries)
        insert_s = time.monotonic() - t1
        del events, deliveries
        sql = svc.sql()
        queued = int(sql.scalar("SELECT count(*) FROM deliveries"))
        rx = ctx.receiver()
        rx.configure(reset=True, record=False)
        procs.log(
            f"backlog[{ctx.db}]: {queued} queued; starting the worker, sampling for {window:.0f} s"
        )
        with procs.LoadMonitor() as mon:
            t_start = time.monotonic()
            if ctx.db == "sqlite":
                svc.start()
            else:
                svc.start_workers(1)
            role = "serve" if ctx.db == "sqlite" else "worker1"
            pid = svc.pids()[role]
            samples: list[tuple[float, int, float | None]] = []
            first_t: float | None = None
            while True:
                st = rx.stats()
                now = time.monotonic()
                samples.append((now, st["count"], procs.rss_mb(pid)))
                if first_t is None and st["count"] > 0:
                    first_t = now
                if st["count"] >= queued:
                    break
                if first_t is not None and now - first_t >= window:
                    break
                if first_t is None and now - t_start > 120:
                    raise RuntimeError("the worker delivered nothing within 120 s")
                if len(samples) > 60 and samples[-60][1] == st["count"]:
                    raise RuntimeError("no delivery for 30 s")
                time.sleep(0.5)
            peak = procs.peak_rss_mb(pid)
        bad = rx.stats()["bad_sig"]
    except Exception:
        procs.log("backlog failed; service logs:\n" + svc.logs_tail())
        raise
    finally:
        svc.stop()
    # the rate after the first second of receipts (start-up ramp left out)
    assert first_t is not None
    a = next((s for s in samples if s[0] >= first_t + 1.0), samples[0])
    b = samples[-1]
    rate = (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else None
    per_s = [
        (samples[i + 2][1] - samples[i][1]) / (samples[i + 2][0] - samples[i][0])
        for i in range(0, len(samples) - 2, 2)
        if samples[i][0] >= first_t
    ]
    rss = [s[2] for s in samples if s[2] is not None and s[0] >= first_t]
    return {
        "backlog": n,
        "queued": queued,
        "build_rows_s": round(build_s, 1),
        "insert_s": round(insert_s, 1),
        "delivered_in_window": b[1],
        "window_s": round(b[0] - first_t, 1),
        "drained_fraction": round(b[1] / queued, 3),
        "seconds_to_first_receipt": round(first_t - t_start, 2),
        "drain_per_s": round(rate, 1) if rate else None,
        "drain_per_s_by_second": {
            "min": round(min(per_s), 1) if per_s else None,
            "max": round(max(per_s), 1) if per_s else None,
        },
        "rss_mb": {
            "first": rss[0] if rss else None,
            "max": max(rss) if rss else None,
            "last": rss[-1] if rss else None,
            "every_5s": [round(x, 1) for x in rss[::10]],
        },
        "peak_rss_mb": peak,
        "bad_signatures": bad,
        "load": mon.summary(),
    }


def run(ctx: Context) -> dict[str, Any]:
    large = int(ctx.opt("backlog", 100_000 if ctx.quick else 1_000_000))
    small = min(20_000, large)
    window = float(ctx.opt("window", 20 if ctx.quick else 30))
    res: dict[str, Any] = {
        "config": {
            "db": ctx.db,
            "small": small,
            "large": large,
            "window_s": window,
            "endpoints": 10,
        }
    }
    res["small"] = _drain(ctx, small, window)
    res["large"] = _drain(ctx, large, window)
    res["drain_ratio"] = ratio(res["large"]["drain_per_s"], res["small"]["drain_per_s"])
    res["peak_rss_mb"] = {
        "small": res["small"]["peak_rss_mb"],
        "large": res["large"]["peak_rss_mb"],
    }
    lp, sp = res["large"]["peak_rss_mb"], res["small"]["peak_rss_mb"]
    res["targets"] = {
        "drain_ge_0.8_of_small": (res["drain_ratio"] or 0) >= 0.8,
        "rss_lt_250mb": lp is not None and lp < RSS_TARGET_MB,
        "rss_flat_with_backlog_size": lp is not None and sp is not None and lp <= sp * 1.1 + 10,
    }
    return res


def summary(res: dict[str, Any]) -> str:
    s, lg = res["small"], res["large"]
    return (
        f"backlog[{res['config']['db']}]: drain {lg['drain_per_s']}/s "
        f"with {lg['queued']:,} pending "
        f"vs {s['drain_per_s']}/s with {s['queued']:,} = {res['drain_ratio']} x; worker RSS "
        f"{lg['rss_mb']['first']} -> {lg['rss_mb']['max']} MB (peak {lg['peak_rss_mb']}, small "
        f"backlog {s['peak_rss_mb']}); insert {lg['insert_s']} s"
    )
