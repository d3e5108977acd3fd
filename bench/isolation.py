"""Scenario 4, isolation: half the endpoints never answer (the receiver reads the request and
stays silent; the service's DELIVERY_TIMEOUT is 10 s). The healthy endpoints' throughput and
p99 latency are compared with a run without the stalled half.

Two runs, each on a fresh service and database:
  baseline: H healthy endpoints;  stalled: the same H healthy endpoints plus H that never answer.
Each run: a burst of M events (throughput of the healthy endpoints, from the first publish to
their last receipt), then a paced phase at the same rate in both runs (half the baseline's
healthy throughput) for the p99 latency. DISABLE_AFTER is raised to 10,000 so that the stalled
endpoints stay enabled and keep holding slots for the whole run (with the default of 10 they
would be disabled after their first 10 timeouts, which would make the test easier).
"""

from __future__ import annotations

from typing import Any

from . import procs
from .common import random_run_id, ratio
from .context import Context
from .service import Service
from .workload import PhaseArgs, publish_and_collect


def _one(
    ctx: Context, stalled: int, healthy: int, M: int, paced_s: float, rate: float | None
) -> dict[str, Any]:
    env = {
        "PROMETORA_WEBHOOKS_DELIVERY_TIMEOUT": "10",
        "PROMETORA_WEBHOOKS_DISABLE_AFTER": "10000",
    }
    svc = Service(ctx, ctx.db, env_extra=env, name=f"iso-{ctx.db}").start()
    try:
        rx = ctx.receiver()
        rx.configure(stall_prefixes=["/stall/"])
        paths = [f"/iso/{i}" for i in range(healthy)] + [f"/stall/{i}" for i in range(stalled)]
        stores, _ = svc.setup_endpoints(paths)
        targets = [f"{svc.base_url}/v1/stores/{sid}/events" for sid in stores]
        common: PhaseArgs = {
            "targets": targets,
            "per_event": healthy,
            "run": random_run_id(),
            "headers": {"authorization": "Bearer " + svc.env["PROMETORA_WEBHOOKS_ADMIN_TOKEN"]},
            "healthy": lambda p: p.startswith("/iso/"),
            "pids": svc.pids,
            "clients": int(ctx.opt("clients", 50)),
        }
        label = "stalled" if stalled else "baseline"
        procs.log(f"isolation[{ctx.db}] {label}: burst of {M} events")
        out: dict[str, Any] = {
            "endpoints": {"healthy": healthy, "stalled": stalled},
            "burst": publish_and_collect(ctx, mode="burst", events=M, first_index=0, **common),
        }
        if rate is None:
            rate = round(0.5 * (out["burst"]["deliveries_per_s"] or 0) / healthy, 1)
        if paced_s > 0 and rate:
            procs.log(f"isolation[{ctx.db}] {label}: paced, {rate} events/s for {paced_s:.0f} s")
            out["paced"] = publish_and_collect(
                ctx, mode="paced", rate=rate, duration=paced_s, first_index=M, **common
            )
            out["paced"]["events_per_s"] = rate
        out["peak_rss_mb"] = svc.peak_rss_mb()
        out["receiver_stalled_requests"] = rx.stats()["stalled"]
        return out
    except Exception:
        procs.log("isolation failed; service logs:\n" + svc.logs_tail())
        raise
    finally:
        ctx.receiver().configure(stall_prefixes=[])
        svc.stop()


def run(ctx: Context) -> dict[str, Any]:
    E = int(ctx.opt("endpoints", 10))
    healthy = E // 2
    M = int(ctx.opt("events", 500 if ctx.quick else 2000))
    paced_s = float(ctx.opt("paced_seconds", 3 if ctx.quick else 10))
    base = _one(ctx, 0, healthy, M, paced_s, None)
    rate = base.get("paced", {}).get("events_per_s")
    stall = _one(ctx, E - healthy, healthy, M, paced_s, rate)
    res: dict[str, Any] = {
        "config": {
            "db": ctx.db,
            "endpoints": E,
            "healthy": healthy,
            "events": M,
            "paced_seconds": paced_s,
            "delivery_timeout_s": 10,
            "disable_after": 10000,
        },
        "baseline": base,
        "stalled": stall,
        "throughput_ratio": ratio(
            stall["burst"]["deliveries_per_s"], base["burst"]["deliveries_per_s"]
        ),
        "burst_p99_ratio": ratio(
            stall["burst"]["latency"].get("p99_ms"), base["burst"]["latency"].get("p99_ms")
        ),
    }
    if "paced" in base and "paced" in stall:
        res["p99_ratio"] = ratio(
            stall["paced"]["latency"].get("p99_ms"), base["paced"]["latency"].get("p99_ms")
        )
    res["peak_rss_mb"] = {
        f"{k}.{n}": v for k in ("baseline", "stalled") for n, v in res[k]["peak_rss_mb"].items()
    }
    res["targets"] = {
        "throughput_ge_0.8": (res["throughput_ratio"] or 0) >= 0.8,
        "p99_le_2x": (res.get("p99_ratio") or 1e9) <= 2.0,
        "all_healthy_delivered": bool(base["burst"]["complete"] and stall["burst"]["complete"]),
    }
    return res


def summary(res: dict[str, Any]) -> str:
    b, s = res["baseline"], res["stalled"]
    bp = b.get("paced", {}).get("latency", {})
    sp = s.get("paced", {}).get("latency", {})
    return (
        f"isolation[{res['config']['db']}]: healthy throughput {s['burst']['deliveries_per_s']} vs "
        f"{b['burst']['deliveries_per_s']}/s = {res['throughput_ratio']} x; paced p99 "
        f"{sp.get('p99_ms')} vs {bp.get('p99_ms')} ms = {res.get('p99_ratio')} x "
        f"(stalled requests held: {s['receiver_stalled_requests']})"
    )
