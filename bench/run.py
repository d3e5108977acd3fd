"""Entry point: ``python -m bench.run [SCENARIO] [--db sqlite|postgresql] [--quick] ...``.

Scenarios: limit, e2e, publish, fanout, isolation, backlog, peers, and ``standard`` (the
default, what ``make bench`` runs): limit, e2e and publish on SQLite and on PostgreSQL, fanout,
isolation, backlog and peers. Each run waits for a quiet box first (limits.md: other work
below 0.3 cores, at most 30 s; ``--quiet-wait`` or BENCH_QUIET_MAX_WAIT changes the cap) and
records the other load during the run.

stdout: one JSON document, then one summary line per scenario. Progress: stderr. Files: only
in a temporary folder, removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import backlog, e2e, fanout, isolation, limit, peers, procs, publish
from .common import dig, git_commit, machine, make_certs, spread, workspace
from .context import Context

MODULES: dict[str, ModuleType] = {
    "limit": limit,
    "e2e": e2e,
    "fanout": fanout,
    "isolation": isolation,
    "backlog": backlog,
    "peers": peers,
    "publish": publish,
}

# (label, scenario, database) of the standard set
STANDARD: list[tuple[str, str, str]] = [
    ("limit", "limit", "sqlite"),
    ("e2e-sqlite", "e2e", "sqlite"),
    ("e2e-postgresql", "e2e", "postgresql"),
    ("publish-sqlite", "publish", "sqlite"),
    ("publish-postgresql", "publish", "postgresql"),
    ("fanout-sqlite", "fanout", "sqlite"),
    ("isolation-sqlite", "isolation", "sqlite"),
    ("backlog-sqlite", "backlog", "sqlite"),
    ("backlog-postgresql", "backlog", "postgresql"),
    ("peers", "peers", "postgresql"),
]

# The figures aggregated over repeats (median, min, max), per scenario.
KEYS: dict[str, list[str]] = {
    "limit": ["posts_per_s", "client_cpu_util", "receiver_cpu_util", "load.other_load_cores_mean"],
    "e2e": [
        "limit.posts_per_s",
        "burst.deliveries_per_s",
        "ratio_to_limit",
        "burst.deliveries_per_s_logged",
        "ratio_to_limit_logged",
        "service_cpu_us_per_delivery",
        "limit.client_cpu_us_per_post",
        "cpu_ratio_to_limit",
        "burst.publish_per_s",
        "burst.latency.p50_ms",
        "burst.latency.p99_ms",
        "paced.events_per_s_target",
        "paced.latency.p50_ms",
        "paced.latency.p99_ms",
        "paced.latency.max_ms",
        "max_peak_rss_mb",
        "burst.load.other_load_cores_mean",
    ],
    "fanout": [
        "raw_1000_posts_s",
        "seconds_to_last_receipt",
        "ratio_to_raw",
        "cold.seconds_to_last_receipt",
        "max_peak_rss_mb",
        "load.other_load_cores_mean",
    ],
    "isolation": [
        "baseline.burst.deliveries_per_s",
        "stalled.burst.deliveries_per_s",
        "throughput_ratio",
        "baseline.paced.latency.p99_ms",
        "stalled.paced.latency.p99_ms",
        "p99_ratio",
        "max_peak_rss_mb",
    ],
    "backlog": [
        "small.drain_per_s",
        "large.drain_per_s",
        "drain_ratio",
        "large.rss_mb.first",
        "large.rss_mb.max",
        "large.rss_mb.last",
        "large.insert_s",
    ],
    "publish": [
        "burst.publish_per_s",
        "burst.publish_response.p50_ms",
        "burst.publish_response.p99_ms",
        "max_peak_rss_mb",
    ],
    "peers": [
        "ours.deliveries_per_s",
        "django_webhook.deliveries_per_s",
        "django_outbound_webhooks.deliveries_per_s",
        "ratio_vs_django_webhook",
        "ratio_vs_django_outbound_webhooks",
    ],
}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", choices=["sqlite", "postgresql"], default=None)
    common.add_argument("--quick", action="store_true", help="smaller workloads")
    common.add_argument("--repeat", type=int, default=1, help="runs per scenario (median, min-max)")
    common.add_argument("--keep", action="store_true", help="keep the temp folder")
    common.add_argument(
        "--quiet-wait",
        type=float,
        default=float(os.environ.get("BENCH_QUIET_MAX_WAIT", "30")),
        help="max seconds to wait for a quiet box before each run (0: do not wait)",
    )
    common.add_argument("--endpoints", type=int, help="e2e/isolation/peers: endpoints")
    common.add_argument("--events", type=int, help="e2e/isolation/peers: events in the burst")
    common.add_argument("--clients", type=int, help="publishing requests in flight")
    common.add_argument(
        "--workers",
        type=int,
        help="PostgreSQL: worker processes (default 1: the service has one core here)",
    )
    common.add_argument("--paced-seconds", type=float, help="e2e/isolation: paced phase length")
    common.add_argument(
        "--paced-rate", type=float, help="e2e: paced events/s (default: half the burst's rate)"
    )
    common.add_argument("--warmup-events", type=int, help="e2e: warm-up events")
    common.add_argument("--skip-limit", action="store_true", help="e2e: do not measure the limit")
    common.add_argument("--profile", action="store_true", help="e2e, publish: py-spy the services")
    common.add_argument(
        "--profile-phase",
        choices=["burst", "paced"],
        help="e2e: the phase --profile samples (default: the burst)",
    )
    common.add_argument("--backlog", type=int, help="backlog: pending deliveries to insert")
    common.add_argument("--window", type=float, help="backlog: seconds of draining to sample")
    common.add_argument("--peers-venv", help="peers: reuse this virtualenv (created if missing)")
    common.add_argument("--only", help="peers: comma-separated subset: ours,djw,dow")
    common.add_argument(
        "--peer-seconds",
        type=float,
        help="peers: a peer's receipts are counted until this long after its first publish, or "
        "until its publishing ends if later (default 60; ours runs to the last delivery)",
    )
    common.add_argument(
        "--pg-statements",
        action="store_true",
        help="e2e on PostgreSQL: load pg_stat_statements and report the costliest statements",
    )
    common.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="a setting for every service process started (A/B runs), e.g. WORKER_CONCURRENCY=64",
    )
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__, parents=[common])
    sub = p.add_subparsers(dest="scenario")
    for name in [*MODULES, "standard"]:
        sub.add_parser(
            name,
            parents=[common],
            help=(MODULES[name].__doc__ or "").split("\n")[0]
            if name in MODULES
            else "the standard set",
        )
    return p


def _aggregate(scenario: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    for r in runs:
        rss = r.get("peak_rss_mb")
        if isinstance(rss, dict) and rss:
            vals = [v for v in rss.values() if isinstance(v, int | float)]
            r["max_peak_rss_mb"] = max(vals) if vals else None
    return {k: spread([dig(r, k) for r in runs]) for k in KEYS.get(scenario, [])}


def _median_line(label: str, scenario: str, agg: dict[str, Any], n: int) -> str:
    parts = []
    for k, s in agg.items():
        if s["median"] is None:
            continue
        parts.append(f"{k}={s['median']:g} [{s['min']:g}-{s['max']:g}]")
    return f"{label} (median [min-max] of {n} runs): " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scenario = args.scenario or "standard"
    if scenario == "standard":
        plan = STANDARD
    else:
        db = args.db or ("postgresql" if scenario == "peers" else "sqlite")
        plan = [(scenario if scenario == "limit" else f"{scenario}-{db}", scenario, db)]
    cores = procs.Cores.plan()
    procs.pin_self(cores.others)
    opts = {
        "endpoints": args.endpoints,
        "events": args.events,
        "clients": args.clients,
        "workers": args.workers,
        "paced_seconds": args.paced_seconds,
        "paced_rate": args.paced_rate,
        "warmup_events": args.warmup_events,
        "skip_limit": args.skip_limit or None,
        "profile": args.profile or None,
        "profile_phase": args.profile_phase,
        "backlog": args.backlog,
        "window": args.window,
        "peers_venv": args.peers_venv,
        "only": args.only,
        "peer_seconds": args.peer_seconds,
        "set": args.set,
        "pg_statements": args.pg_statements or None,
    }
    doc: dict[str, Any] = {
        "meta": {
            "commit": git_commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "cores": cores.describe(),
            "argv": sys.argv[1:] if argv is None else argv,
            "quick": args.quick,
            "repeat": args.repeat,
        },
        "results": {},
    }
    lines: list[str] = []
    failed = False
    with workspace(args.keep) as wd:
        certs = make_certs(wd)
        ctx = Context(wd, certs, cores, quick=args.quick, opts=opts)
        try:
            for label, scen, db in plan:
                mod = MODULES[scen]
                ctx.db = db
                runs: list[dict[str, Any]] = []
                for i in range(args.repeat):
                    procs.log(f"{label}: run {i + 1}/{args.repeat}: waiting for a quiet box")
                    quiet = procs.wait_quiet(args.quiet_wait)
                    quiet["loadavg_start"] = procs.loadavg()
                    t0 = time.monotonic()
                    try:
                        res = mod.run(ctx)
                    except Exception as exc:
                        failed = True
                        procs.log(f"{label}: FAILED: {exc!r}")
                        res = {"error": repr(exc), "traceback": traceback.format_exc()[-4000:]}
                    res["quiet_wait"] = quiet
                    res["wall_s"] = round(time.monotonic() - t0, 1)
                    runs.append(res)
                    if "error" not in res:
                        procs.log(mod.summary(res))
                entry: dict[str, Any] = {"runs": runs}
                ok = [r for r in runs if "error" not in r]
                if args.repeat > 1:
                    entry["aggregate"] = _aggregate(scen, ok)
                    lines.append(_median_line(label, scen, entry["aggregate"], len(ok)))
                elif ok:
                    _aggregate(scen, ok)
                    lines.append(_summary(mod, ok[0]))
                if len(ok) < len(runs):
                    lines.append(
                        f"{label}: {len(runs) - len(ok)} run(s) FAILED: {runs[-1].get('error', '')}"
                    )
                doc["results"][label] = entry
        finally:
            ctx.close()
    json.dump(doc, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    for line in lines:
        print(line)
    sys.stdout.flush()
    return 1 if failed else 0


def _summary(mod: ModuleType, res: dict[str, Any]) -> str:
    fn: Callable[[dict[str, Any]], str] = mod.summary
    return fn(res)


if __name__ == "__main__":
    raise SystemExit(main())
