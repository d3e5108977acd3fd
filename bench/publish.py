"""Scenario 7, publish: the publishing API on its own. One ``api`` process and no worker (on
SQLite too), E endpoints per store, M events published by C concurrent clients: each 202 means
the event and its E deliveries are committed (SQLite synchronous=FULL; PostgreSQL
synchronous_commit=on). Reports events/s per API process and the response-time percentiles,
and checks that every accepted event left exactly E queued deliveries. The deliveries are not
sent: this measures what one API process can accept, apart from the workers that would share
its core in the end-to-end scenario.
"""

from __future__ import annotations

from typing import Any

from .common import random_run_id
from .context import Context
from .profiling import Profiler
from .service import Service
from .workload import PhaseArgs, publish_and_collect

TARGET_PER_S = 1500


def run(ctx: Context) -> dict[str, Any]:
    E = min(int(ctx.opt("endpoints", 10)), 100)  # one store: every event fans out to all E
    M = int(ctx.opt("events", 2000 if ctx.quick else 10000))
    C = int(ctx.opt("clients", 50))
    res: dict[str, Any] = {
        "config": {"db": ctx.db, "processes": "api", "endpoints": E, "events": M, "clients": C}
    }
    svc = Service(ctx, ctx.db, workers=0, name=f"publish-{ctx.db}").start(api_only=True)
    try:
        stores, _eps = svc.setup_endpoints([f"/pub/{i}" for i in range(E)])
        targets = [f"{svc.base_url}/v1/stores/{sid}/events" for sid in stores]
        headers = {"authorization": "Bearer " + svc.env["PROMETORA_WEBHOOKS_ADMIN_TOKEN"]}
        common: PhaseArgs = {
            "targets": targets,
            "per_event": 0,  # nothing is sent: no worker runs
            "clients": C,
            "run": random_run_id(),
            "headers": headers,
            "pids": svc.pids,
        }
        warm = publish_and_collect(ctx, mode="burst", events=min(500, M), **common)
        profiler = None
        if ctx.opt("profile", False):
            pid = svc.pids()["api"]
            profiler = Profiler(pid, ctx.workdir / "profile-api.raw", ctx.cores.others)
        burst = publish_and_collect(ctx, mode="burst", events=M, first_index=10**6, **common)
        if profiler is not None:
            res["profile"] = {"api": profiler.stop()}
        keys = ("published", "accepted", "publish_errors", "publish_per_s", "publish_response")
        res["burst"] = {k: burst.get(k) for k in (*keys, "service_cpu_s")}
        sql = svc.sql()
        accepted = int(burst.get("accepted") or 0) + int(warm.get("accepted") or 0)
        queued = int(sql.scalar("SELECT count(*) FROM deliveries"))
        sql.close()
        res["checks"] = {"expected_queued": accepted * E, "queued": queued}
        res["peak_rss_mb"] = svc.peak_rss_mb()
    finally:
        svc.stop()
    res["targets"] = {
        "publish_ge_1500_per_s_per_api_process": (res["burst"]["publish_per_s"] or 0)
        >= TARGET_PER_S,
        "every_event_queued": res["checks"]["queued"] == res["checks"]["expected_queued"],
    }
    return res


def summary(res: dict[str, Any]) -> str:
    b = res.get("burst", {})
    r = b.get("publish_response") or {}
    ck = res.get("checks", {})
    return (
        f"publish[{res['config']['db']}]: {b.get('publish_per_s')} events/s from one api "
        f"process ({res['config']['endpoints']} endpoints each), response p50/p99 "
        f"{r.get('p50_ms')}/{r.get('p99_ms')} ms, {ck.get('queued')}/{ck.get('expected_queued')} "
        f"deliveries queued, peak RSS {res.get('peak_rss_mb')}"
    )
