"""One measured phase: publish (a child process), wait for every delivery at the receiver, then
for every attempt in the database, and compute rates and latencies from the two sides'
timestamps. Shared by the end-to-end, fan-out, isolation and peers scenarios."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any, Required, TypedDict

from . import procs
from .common import latency_ms, ratio
from .context import Context


class PhaseArgs(TypedDict, total=False):
    """The keyword arguments of ``publish_and_collect`` that a scenario's phases share (passed
    as ``**common``); the required ones have no default there."""

    targets: Required[list[str]]
    per_event: Required[int]
    run: Required[str]
    clients: int
    headers: dict[str, str]
    healthy: Callable[[str], bool]
    recorded: Callable[[int], float | None]
    pids: Callable[[], dict[str, int]]
    database_cpu: Callable[[], float]


def publish_and_collect(
    ctx: Context,
    *,
    targets: list[str],
    per_event: int,
    mode: str = "burst",
    events: int = 0,
    rate: float = 0.0,
    duration: float = 0.0,
    clients: int = 50,
    run: str,
    first_index: int = 0,
    headers: dict[str, str] | None = None,
    healthy: Callable[[str], bool] | None = None,
    recorded: Callable[[int], float | None] | None = None,
    timeout: float = 600.0,
    idle: float = 30.0,
    pids: Callable[[], dict[str, int]] | None = None,
    database_cpu: Callable[[], float] | None = None,
    during: Callable[[], None] | None = None,
    window: float | None = None,
) -> dict[str, Any]:
    """``per_event``: deliveries each event should cause at the receiver (healthy paths only).
    ``window``: stop waiting for receipts this many seconds after the start (a slow sender's
    rate is then what arrived by then, over the time to its last receipt).
    ``recorded(n)``: waits until ``n`` more successful attempts are in the database, returns
    when (monotonic) or None. ``pids()``: service processes, for their CPU use;
    ``database_cpu()``: the database server's CPU seconds so far (PostgreSQL)."""
    rx = ctx.receiver()
    rx.configure(reset=True, record=True)
    cpu0 = {n: procs.cpu_seconds(p) for n, p in (pids() if pids else {}).items()}
    rx_cpu0 = rx.cpu_seconds()
    db_cpu0 = database_cpu() if database_cpu else 0.0
    cfg = {
        "targets": targets,
        "headers": headers or {},
        "mode": mode,
        "events": events,
        "rate": rate,
        "duration": duration,
        "clients": clients,
        "run": run,
        "first_index": first_index,
    }
    t_start = time.monotonic()
    with procs.LoadMonitor() as mon:
        child, out = procs.start_child(
            "bench.publisher", cfg, ctx.workdir, f"publisher-{ctx.next_id()}", ctx.cores.others
        )
        if during is not None:
            during()
        pub = procs.finish_child(child, out, ctx.workdir, "publisher", timeout)
        ok = sum(1 for s in pub["status"] if 200 <= s < 300)
        expected = ok * per_event
        wait = timeout if window is None else max(0.0, window - (time.monotonic() - t_start))
        st = rx.wait_count(expected, timeout=wait, idle=idle)
        t_recorded = recorded(expected) if recorded is not None and st["complete"] else None
    wall = time.monotonic() - t_start
    cpu = {
        n: round(procs.cpu_seconds(p) - cpu0.get(n, 0.0), 2)
        for n, p in (pids() if pids else {}).items()
    }
    extra: dict[str, Any] = {}
    if database_cpu is not None:
        extra["database_cpu_s"] = round(database_cpu() - db_cpu0, 2)
    dump = rx.dump()
    return analyse(
        pub,
        dump,
        st,
        expected=expected,
        healthy=healthy,
        t_recorded=t_recorded,
        extra={
            "load": mon.summary(),
            "service_cpu_s": cpu,
            "receiver_cpu_util": round((rx.cpu_seconds() - rx_cpu0) / max(wall, 1e-6), 3),
            **extra,
        },
    )


def analyse(
    pub: dict[str, Any],
    dump: dict[str, Any],
    st: dict[str, Any],
    *,
    expected: int,
    healthy: Callable[[str], bool] | None = None,
    t_recorded: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    accepted = {
        k: (s, r)
        for k, s, r, code in zip(
            pub["keys"], pub["t_send"], pub["t_resp"], pub["status"], strict=True
        )
        if 200 <= code < 300
    }
    n_pub = len(pub["keys"])
    first_send = min(pub["t_send"]) if pub["t_send"] else None
    last_resp = max(pub["t_resp"]) if pub["t_resp"] else None
    paths: list[str] = dump["paths"]
    keep: Collection[int] = (
        {i for i, p in enumerate(paths) if healthy(p)} if healthy else range(len(paths))
    )
    seen: set[tuple[int, str]] = set()
    lat: list[float] = []
    by_second: dict[int, list[float]] = {}  # latencies by the second (from the first publish)
    dup = unknown = 0
    last_t: float | None = None
    first_t: float | None = None
    for t, p, k in zip(dump["t"], dump["p"], dump["k"], strict=True):
        if p not in keep:
            continue
        if (p, k) in seen:
            dup += 1
            continue
        seen.add((p, k))
        last_t = t if last_t is None or t > last_t else last_t
        first_t = t if first_t is None or t < first_t else first_t
        pr = accepted.get(k)
        if pr is None:
            unknown += 1
            continue
        lat.append(t - pr[1])
        if first_send is not None:
            by_second.setdefault(int(pr[1] - first_send), []).append(t - pr[1])
    delivered = len(seen)
    span = (last_t - first_send) if last_t is not None and first_send is not None else None
    pub_span = (
        (last_resp - first_send) if last_resp is not None and first_send is not None else None
    )
    early = sum(1 for x in lat if x < 0)
    out: dict[str, Any] = {
        "published": n_pub,
        "accepted": len(accepted),
        "publish_errors": n_pub - len(accepted),
        "publish_error_samples": pub.get("errors", [])[:3],
        "publish_per_s": round(len(accepted) / pub_span, 1) if pub_span else None,
        "publish_response": latency_ms(sorted(r - s for s, r in accepted.values())),
        "publisher_cpu_s": pub.get("cpu_s"),
        "expected_deliveries": expected,
        "delivered": delivered,
        "duplicates": dup,
        "unknown_keys": unknown,
        "complete": delivered >= expected,
        "bad_signatures": st.get("bad_sig"),
        "stalled_requests": st.get("stalled"),
        "seconds_first_publish_to_last_receipt": round(span, 3) if span else None,
        "deliveries_per_s": round(delivered / span, 1) if span else None,
        # A delivery can reach the receiver before its 202 reaches the publisher; those count
        # as 0 ms here (``before_202`` says how many).
        "latency": latency_ms([max(0.0, x) for x in lat]),
        "before_202": early,
        # When the slow ones happened: the latency of the deliveries published in each second.
        "latency_by_second": [
            {"s": sec, **latency_ms([max(0.0, x) for x in v])}
            for sec, v in sorted(by_second.items())
        ],
    }
    if t_recorded is not None and first_send is not None:
        out["seconds_first_publish_to_last_attempt_logged"] = round(t_recorded - first_send, 3)
        out["deliveries_per_s_logged"] = round(delivered / (t_recorded - first_send), 1)
    if "late" in pub:
        out["publisher_late"] = pub["late"]
    if extra:
        out.update(extra)
    out["first_receipt_after_first_publish_ms"] = (
        round((first_t - first_send) * 1000, 1) if first_t is not None and first_send else None
    )
    return out


def rate_ratio(a: dict[str, Any], b: dict[str, Any], key: str = "deliveries_per_s") -> float | None:
    return ratio(a.get(key), b.get(key))
