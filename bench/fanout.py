"""Scenario 3, fan-out: one event to 1,000 endpoints; the time from the publish to the last
receipt, as a ratio to the time one process takes for 1,000 raw signed POSTs (measured in the
same run, to the same 1,000 receiver paths, on a warm connection pool).

A store holds at most 100 endpoints, so "one event to 1,000 endpoints" is one event published
to each of 10 stores of 100 endpoints, the 10 publishes sent at once. The first round (cold
connections) is reported apart; the figure is the median of the warm rounds.
"""

from __future__ import annotations

import statistics
from typing import Any

from . import limit, procs
from .common import random_run_id, ratio
from .context import Context
from .service import Service
from .workload import publish_and_collect


def run(ctx: Context) -> dict[str, Any]:
    n_ep = int(ctx.opt("endpoints", 1000))
    rounds = 3
    per_store = 100
    n_stores = -(-n_ep // per_store)
    res: dict[str, Any] = {
        "config": {
            "db": ctx.db,
            "endpoints": n_ep,
            "stores": n_stores,
            "warm_rounds": rounds,
            "how": "one event published to each store at once "
            "(a store holds at most 100 endpoints)",
        }
    }
    raw = limit.measure(ctx, n=0, fanout=n_ep, fanout_repeats=rounds)
    res["raw"] = raw
    res["raw_1000_posts_s"] = raw["fanout_s"]
    svc = Service(ctx, ctx.db, name=f"fanout-{ctx.db}").start()
    try:
        procs.log(f"fanout[{ctx.db}]: creating {n_ep} endpoints in {n_stores} stores")
        stores, _ = svc.setup_endpoints([f"/fan/{i}" for i in range(n_ep)], per_store=per_store)
        targets = [f"{svc.base_url}/v1/stores/{sid}/events" for sid in stores]
        headers = {"authorization": "Bearer " + svc.env["PROMETORA_WEBHOOKS_ADMIN_TOKEN"]}
        run_id = random_run_id()
        results = []
        for r in range(rounds + 1):
            procs.log(f"fanout[{ctx.db}]: round {r + 1}/{rounds + 1}")
            results.append(
                publish_and_collect(
                    ctx,
                    targets=targets,
                    per_event=per_store,
                    events=len(targets),
                    clients=len(targets),
                    run=run_id,
                    first_index=r * len(targets),
                    headers=headers,
                    pids=svc.pids,
                    timeout=120,
                )
            )
        res["cold"] = results[0]
        res["warm"] = results[1:]
        warm = [x["seconds_first_publish_to_last_receipt"] for x in results[1:]]
        res["seconds_to_last_receipt"] = round(statistics.median(warm), 4)
        res["ratio_to_raw"] = ratio(res["seconds_to_last_receipt"], res["raw_1000_posts_s"], 2)
        res["delivered_all"] = all(x["complete"] for x in results)
        res["peak_rss_mb"] = svc.peak_rss_mb()
        res["load"] = results[-1]["load"]
    except Exception:
        procs.log("fanout failed; service logs:\n" + svc.logs_tail())
        raise
    finally:
        svc.stop()
    return res


def summary(res: dict[str, Any]) -> str:
    return (
        f"fanout[{res['config']['db']}]: one event to {res['config']['endpoints']} endpoints, "
        f"last receipt after {res['seconds_to_last_receipt']} s (cold "
        f"{res['cold']['seconds_first_publish_to_last_receipt']} s) = {res['ratio_to_raw']} x "
        f"{res['raw_1000_posts_s']} s for 1,000 raw POSTs; all delivered: {res['delivered_all']}"
    )
