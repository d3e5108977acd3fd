"""The publishing load: concurrent aiohttp clients (uvloop) in one process, so that the load
generator is not the bottleneck. Each event carries a benchmark key (``bk_<run>_<n>``) that
the receiver finds in the delivered body; the publisher records, per key, when the request was
sent and when its 2xx response (the 202) came back (``time.monotonic``, which is system-wide,
so it compares with the receiver's arrival times).

``burst``: ``events`` events, ``clients`` requests in flight, as fast as the service accepts.
``paced``: ``rate`` events/s for ``duration`` seconds (open loop, at most ``clients`` in flight).

Run as a child: ``python -m bench.publisher CONFIG RESULT``.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from . import procs
from .common import bench_key, order


async def _publish(cfg: dict[str, Any]) -> dict[str, Any]:
    import aiohttp
    import orjson

    targets: list[str] = cfg["targets"]
    headers = {"content-type": "application/json", **cfg.get("headers", {})}
    run = cfg["run"]
    first = int(cfg.get("first_index", 0))
    clients = int(cfg["clients"])
    etype = cfg.get("type", "order.created")
    keys: list[str] = []
    t_send: list[float] = []
    t_resp: list[float] = []
    statuses: list[int] = []
    errors: list[str] = []

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        key = bench_key(run, first + i)
        body = orjson.dumps({"type": etype, "data": order(key)})
        url = targets[i % len(targets)]
        sent = time.monotonic()
        status = 0
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            if len(errors) < 20:
                errors.append(repr(exc)[:200])
        keys.append(key)
        t_send.append(sent)
        t_resp.append(time.monotonic())
        statuses.append(status)

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    timeout = aiohttp.ClientTimeout(total=float(cfg.get("timeout", 120)))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if cfg["mode"] == "burst":
            n = int(cfg["events"])
            it = iter(range(n))

            async def worker() -> None:
                for i in it:
                    await one(session, i)

            await asyncio.gather(*(worker() for _ in range(min(clients, n))))
        else:
            rate = float(cfg["rate"])
            n = max(1, int(rate * float(cfg["duration"])))
            sem = asyncio.Semaphore(clients)
            tasks = []
            start = time.monotonic()
            late = 0

            async def paced(i: int) -> None:
                try:
                    await one(session, i)
                finally:
                    sem.release()

            for i in range(n):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.05:
                    late += 1
                await sem.acquire()
                tasks.append(asyncio.create_task(paced(i)))
            await asyncio.gather(*tasks)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    out: dict[str, Any] = {
        "keys": keys,
        "t_send": t_send,
        "t_resp": t_resp,
        "status": statuses,
        "errors": errors,
        "cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 3),
    }
    if cfg["mode"] != "burst":
        out["late"] = late
    return out


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(_publish(cfg))
    except ImportError:  # pragma: no cover
        return asyncio.run(_publish(cfg))


if __name__ == "__main__":
    procs.child_main(main)
