"""Scenario 2, end to end: the service started as a user starts it, E endpoints on the
receiver, M events published through the HTTP API by concurrent aiohttp clients.

Phases, all in one run (one service, one database):
  1. the limit, measured again now;
  2. warm-up: a few events, so connections exist and the first-request costs are paid;
  3. burst: M events as fast as the API takes them (C in flight): deliveries/s from the first
     publish to the last receipt, and to the last attempt written to the database;
  4. the limit once more, right after the burst (the service idle): the ratio's denominator is
     the mean of the two, since this machine's speed drifts by tens of percent within minutes;
  5. paced: events at half the burst's delivery rate, for the latency target.
Then it checks that the log holds one successful attempt per delivery and the queue is empty.
"""

from __future__ import annotations

from typing import Any

from . import limit, procs
from .common import random_run_id, ratio
from .context import Context
from .profiling import Profiler
from .service import Service
from .workload import PhaseArgs, publish_and_collect

RSS_TARGET_MB = 250


def run(ctx: Context) -> dict[str, Any]:
    E = int(ctx.opt("endpoints", 10))
    M = int(ctx.opt("events", 1000 if ctx.quick else 5000))
    C = int(ctx.opt("clients", 50))
    workers = int(ctx.opt("workers", 1))
    paced_s = float(ctx.opt("paced_seconds", 3 if ctx.quick else 10))
    warm_n = int(ctx.opt("warmup_events", min(200, M)))
    profile = bool(ctx.opt("profile", False))
    profile_phase = str(ctx.opt("profile_phase", "burst"))
    res: dict[str, Any] = {
        "config": {
            "db": ctx.db,
            "processes": "serve" if ctx.db == "sqlite" else f"api + {workers} worker(s)",
            "endpoints": E,
            "events": M,
            "clients": C,
            "paced_seconds": paced_s,
            "warmup_events": warm_n,
            "durability": "SQLite synchronous=FULL"
            if ctx.db == "sqlite"
            else "PostgreSQL fsync=on, synchronous_commit=on",
        }
    }
    with_limit = not ctx.opt("skip_limit", False)
    limit_n = 5000 if ctx.quick else 20000
    limits = [limit.measure(ctx, limit_n, warmup=500)] if with_limit else []
    svc = Service(ctx, ctx.db, workers=workers, name=f"e2e-{ctx.db}").start()
    try:
        stores, _eps = svc.setup_endpoints([f"/e2e/{i}" for i in range(E)])
        targets = [f"{svc.base_url}/v1/stores/{sid}/events" for sid in stores]
        headers = {"authorization": "Bearer " + svc.env["PROMETORA_WEBHOOKS_ADMIN_TOKEN"]}
        sql = svc.sql()
        run_id = random_run_id()
        logged = {"n": 0}

        def recorded(n: int) -> float | None:
            logged["n"] += n
            return sql.wait_scalar(
                "SELECT count(*) FROM attempts WHERE status = 'succeeded'", logged["n"], 120
            )

        common: PhaseArgs = {
            "targets": targets,
            "per_event": E,
            "clients": C,
            "run": run_id,
            "headers": headers,
            "recorded": recorded,
            "pids": svc.pids,
        }
        postmaster = ctx.pg().postmaster_pid() if ctx.db == "postgresql" else None
        if postmaster is not None:
            common["database_cpu"] = lambda: procs.tree_cpu_seconds(postmaster)
        if warm_n:
            procs.log(f"e2e[{ctx.db}]: warm-up, {warm_n} events")
            warm = publish_and_collect(ctx, mode="burst", events=warm_n, first_index=0, **common)
            res["warmup"] = {
                k: warm[k] for k in ("delivered", "expected_deliveries", "deliveries_per_s")
            }
        procs.log(f"e2e[{ctx.db}]: burst, {M} events x {E} endpoints")

        def profilers(phase: str) -> list[tuple[str, Profiler]]:
            if not profile or phase != profile_phase:
                return []
            return [
                (name, Profiler(pid, ctx.workdir / f"profile-{name}.raw", ctx.cores.others))
                for name, pid in svc.pids().items()
            ]

        running = profilers("burst")
        burst = publish_and_collect(ctx, mode="burst", events=M, first_index=warm_n, **common)
        if running:
            res["profile"] = {name: p.stop() for name, p in running}
        res["burst"] = burst
        if with_limit:
            procs.log(f"e2e[{ctx.db}]: the limit again")
            limits.append(limit.measure(ctx, limit_n, warmup=500))
            res["limit"] = limit.combine(limits)
        rate = burst.get("deliveries_per_s")
        if paced_s > 0 and rate:
            ev_rate = float(ctx.opt("paced_rate", 0)) or round(0.5 * rate / E, 1)
            procs.log(f"e2e[{ctx.db}]: paced, {ev_rate} events/s for {paced_s:.0f} s")
            running = profilers("paced")
            res["paced"] = publish_and_collect(
                ctx,
                mode="paced",
                rate=ev_rate,
                duration=paced_s,
                first_index=warm_n + M,
                **common,
            )
            res["paced"]["events_per_s_target"] = ev_rate
            if running:
                res["profile"] = {name: p.stop() for name, p in running}
        total = sum(res[p]["delivered"] if p in res else 0 for p in ("burst", "paced")) + (
            res["warmup"]["delivered"] if "warmup" in res else 0
        )
        res["checks"] = {
            "receipts_total": total,
            "attempts_succeeded": int(
                sql.scalar("SELECT count(*) FROM attempts WHERE status = 'succeeded'")
            ),
            "attempts_failed": int(
                sql.scalar("SELECT count(*) FROM attempts WHERE status <> 'succeeded'")
            ),
            "deliveries_left_in_queue": int(sql.scalar("SELECT count(*) FROM deliveries")),
        }
        sql.close()
        res["peak_rss_mb"] = svc.peak_rss_mb()
    except Exception:
        procs.log("e2e failed; service logs:\n" + svc.logs_tail())
        raise
    finally:
        svc.stop()
    if svc.pg_statements:
        res["pg_statements"] = svc.pg_statements
    _targets(res)
    return res


def _targets(res: dict[str, Any]) -> None:
    burst = res.get("burst", {})
    lim = res.get("limit", {}).get("posts_per_s")
    res["ratio_to_limit"] = ratio(burst.get("deliveries_per_s"), lim)
    res["ratio_to_limit_logged"] = ratio(burst.get("deliveries_per_s_logged"), lim)
    # The same comparison in CPU time, which drifts less than wall time here: the limit's CPU
    # per POST against the service processes' CPU per delivery in the burst.
    cpu = burst.get("service_cpu_s") or {}
    if cpu and burst.get("delivered"):
        res["service_cpu_us_per_delivery"] = round(sum(cpu.values()) / burst["delivered"] * 1e6)
        if "database_cpu_s" in burst:  # PostgreSQL's server processes, not in the ratio
            res["database_cpu_us_per_delivery"] = round(
                burst["database_cpu_s"] / burst["delivered"] * 1e6
            )
        res["cpu_ratio_to_limit"] = ratio(
            res.get("limit", {}).get("client_cpu_us_per_post"), res["service_cpu_us_per_delivery"]
        )
    paced = res.get("paced", {}).get("latency", {})
    rss = [v for v in res.get("peak_rss_mb", {}).values() if v is not None]
    ck = res.get("checks", {})
    res["targets"] = {
        "deliveries_ge_half_limit": (res["ratio_to_limit"] or 0) >= 0.5 if lim else None,
        "paced_p50_le_25ms": paced.get("p50_ms", 1e9) <= 25 if paced else None,
        "paced_p99_le_100ms": paced.get("p99_ms", 1e9) <= 100 if paced else None,
        "publish_ge_1500_per_s_per_api_process": (burst.get("publish_per_s") or 0) >= 1500,
        "rss_lt_250mb": max(rss) < RSS_TARGET_MB if rss else None,
        "every_delivery_logged": bool(
            burst.get("complete")
            and ck.get("attempts_succeeded") == ck.get("receipts_total")
            and ck.get("deliveries_left_in_queue") == 0
        ),
    }


def summary(res: dict[str, Any]) -> str:
    b = res.get("burst", {})
    p = res.get("paced", {}).get("latency", {})
    rss = res.get("peak_rss_mb", {})
    return (
        f"e2e[{res['config']['db']}]: {b.get('deliveries_per_s')} deliveries/s "
        f"({res.get('ratio_to_limit')} x limit {res.get('limit', {}).get('posts_per_s')}), "
        f"{b.get('delivered')}/{b.get('expected_deliveries')} delivered, "
        f"publish {b.get('publish_per_s')}/s, "
        f"paced p50/p99 {p.get('p50_ms')}/{p.get('p99_ms')} ms, "
        f"peak RSS {', '.join(f'{k} {v} MB' for k, v in rss.items())}"
    )
