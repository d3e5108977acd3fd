"""Scenario 1, the limit: raw signed POSTs from one process (aiohttp + uvloop, keep-alive,
50 in flight) to the receiver, with the same ~510-byte body and the same signing work as a
delivery (build the event, orjson it, HMAC-SHA256, Standard Webhooks headers).

The child part (``python -m bench.limit CONFIG RESULT``) is the load generator; it runs on
the non-receiver core. It also times "1,000 raw POSTs" to 1,000 different paths, the
baseline of the fan-out scenario.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import resource
import secrets
import ssl
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from . import procs
from .common import bench_key, order, random_run_id
from .context import Context

SECRET = "whsec_" + base64.b64encode(b"bench-limit-secret-0123456789ab").decode()


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _client(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp
    import orjson

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    ctx = ssl.create_default_context(cafile=cfg["ca"])
    conc = int(cfg["concurrency"])
    run = random_run_id()
    counter = 0
    errors = 0

    def request(path: str) -> tuple[str, bytes, dict[str, str]]:
        nonlocal counter
        counter += 1
        evt_id = "evt_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = orjson.dumps(
            {
                "id": evt_id,
                "type": "order.created",
                "created": created,
                "data": order(bench_key(run, counter)),
            }
        )
        ts = int(time.time())
        mac = hmac.digest(key, b"%s.%d.%s" % (evt_id.encode(), ts, body), hashlib.sha256)
        headers = {
            "content-type": "application/json",
            "user-agent": "bench-limit",
            "webhook-id": evt_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        }
        return cfg["base"] + path, body, headers

    async def blast(session: aiohttp.ClientSession, paths: list[str]) -> float:
        nonlocal errors
        it = iter(paths)

        async def worker() -> None:
            nonlocal errors
            for path in it:
                url, body, headers = request(path)
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return time.perf_counter() - start

    out: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=conc, ssl=ctx)
    async with aiohttp.ClientSession(connector=connector) as session:
        if cfg.get("n", 0):
            await blast(session, ["/limit"] * int(cfg["warmup"]))
            cpu0 = _cpu()
            elapsed = await blast(session, ["/limit"] * int(cfg["n"]))
            cpu = _cpu() - cpu0
            out.update(
                posts=int(cfg["n"]),
                elapsed_s=round(elapsed, 3),
                posts_per_s=round(int(cfg["n"]) / elapsed, 1),
                client_cpu_util=round(cpu / elapsed, 3),
            )
        if cfg.get("fanout", 0):
            paths = [f"/fan/{i}" for i in range(int(cfg["fanout"]))]
            await blast(session, paths)  # warm: connections open, as in the service's case
            times = [await blast(session, paths) for _ in range(int(cfg["fanout_repeats"]))]
            out.update(
                fanout_posts=len(paths),
                fanout_s_runs=[round(t, 4) for t in times],
                fanout_s=round(statistics.median(times), 4),
            )
    out["errors"] = errors
    return out


def client_main(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(_client(cfg))
    except ImportError:  # pragma: no cover
        return asyncio.run(_client(cfg))


def measure(
    ctx: Context, n: int, warmup: int = 1000, fanout: int = 0, fanout_repeats: int = 3
) -> dict[str, Any]:
    """One limit measurement against the shared receiver (its state is reset afterwards)."""
    rx = ctx.receiver()
    verify = {"/limit": ["sw", SECRET]}
    verify.update({f"/fan/{i}": ["sw", SECRET] for i in range(fanout)})
    rx.configure(reset=True, record=False, verify=verify)
    cpu0 = rx.cpu_seconds()
    t0 = time.monotonic()
    result = procs.run_child(
        "bench.limit",
        {
            "base": rx.url(""),
            "ca": str(ctx.certs.ca),
            "concurrency": 50,
            "n": n,
            "warmup": warmup,
            "fanout": fanout,
            "fanout_repeats": fanout_repeats,
        },
        ctx.workdir,
        f"limit-{ctx.next_id()}",
        ctx.cores.others,
        timeout=300,
    )
    wall = time.monotonic() - t0
    st = rx.stats()
    result["receiver_cpu_util"] = round((rx.cpu_seconds() - cpu0) / max(wall, 1e-6), 3)
    result["bad_signatures"] = st["bad_sig"]
    rx.configure(reset=True, record=True)
    return result


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several measurements in one run: ``posts_per_s`` is their mean, each one is kept."""
    rates = [r["posts_per_s"] for r in runs]
    return {
        "posts_per_s": round(statistics.fmean(rates), 1),
        "posts_per_s_each": rates,
        "client_cpu_us_per_post": round(
            statistics.fmean(r["client_cpu_util"] * r["elapsed_s"] / r["posts"] for r in runs)
            * 1e6,
            1,
        ),
        "errors": sum(r["errors"] for r in runs),
        "bad_signatures": sum(r["bad_signatures"] for r in runs),
        "runs": runs,
    }


def run(ctx: Context) -> dict[str, Any]:
    n = 5000 if ctx.quick else 20000
    with procs.LoadMonitor() as mon:
        res = measure(ctx, n, warmup=500 if ctx.quick else 1000)
    res["load"] = mon.summary()
    res["config"] = {
        "client": "aiohttp + uvloop, one process, keep-alive",
        "concurrency": 50,
        "scheme": "https (trustme ECDSA cert)",
        "signed": True,
        "body_bytes": "about 510",
    }
    return res


def summary(res: dict[str, Any]) -> str:
    return (
        f"limit: {res['posts_per_s']:.0f} signed HTTPS POST/s from one process "
        f"(client CPU {res['client_cpu_util']:.0%}, receiver CPU {res['receiver_cpu_util']:.0%}, "
        f"errors {res['errors']})"
    )


if __name__ == "__main__":
    procs.child_main(client_main)
