"""Micro-benchmark: PostgreSQL's cost of writing many rows per transaction, per row, as an
executemany (asyncpg binds and runs the statement once per row) against one statement over
arrays (``unnest``), the form ``storage/driver.py execute_rows`` uses for queue, event and
attempt rows and for queue deletes. A throwaway cluster on core 0, a ``deliveries``-shaped table
with its indexes; the PostgreSQL backend's CPU is read from /proc, the client's from this process.

    .venv/bin/python -m bench.pg_rows [--rows 40000]

Prints one JSON document (rows/s, server and client µs per row, by batch size and form).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from .pg import PgCluster

DDL = """
CREATE TABLE deliveries (id BIGSERIAL PRIMARY KEY, endpoint_id VARCHAR(64) NOT NULL,
  event_id VARCHAR(64) NOT NULL, attempt INTEGER NOT NULL, "trigger" VARCHAR(16) NOT NULL,
  available_at BIGINT NOT NULL, lease_token VARCHAR(64));
CREATE INDEX ix_available_at ON deliveries (available_at);
CREATE INDEX ix_endpoint ON deliveries (endpoint_id);
CREATE INDEX ix_event ON deliveries (event_id);
"""
INSERT = 'INSERT INTO deliveries (endpoint_id, event_id, attempt, "trigger", available_at)'
PER_ROW = INSERT + " VALUES ($1, $2, 1, 'scheduled', $3)"
ARRAYS = (
    INSERT + " SELECT ep, ev, 1, 'scheduled', due"
    " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t (ep, ev, due)"
)


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(url: str, total: int) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(DDL)
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
        out = []
        for batch in (10, 200):
            for form in ("executemany", "arrays", "executemany", "arrays"):
                server0, client0 = _cpu_s(backend), time.process_time()
                t0 = time.perf_counter()
                for i in range(total // batch):
                    rows = [
                        (f"we_{j % 10}", f"evt_{i}_{j}", 1_796_380_000_000 + i)
                        for j in range(batch)
                    ]
                    async with conn.transaction():
                        if form == "executemany":
                            await conn.executemany(PER_ROW, rows)
                        else:
                            await conn.execute(
                                ARRAYS, *[list(col) for col in zip(*rows, strict=True)]
                            )
                wall = time.perf_counter() - t0
                out.append(
                    {
                        "batch": batch,
                        "form": form,
                        "rows_per_s": round(total / wall),
                        "server_us_per_row": round(1e6 * (_cpu_s(backend) - server0) / total, 1),
                        "client_us_per_row": round(
                            1e6 * (time.process_time() - client0) / total, 1
                        ),
                    }
                )
                await conn.execute("TRUNCATE deliveries")
        return out
    finally:
        await conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=40_000, help="rows per measurement")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="prometora-bench-"))
    cluster = PgCluster.start(base, [0])
    try:
        results = asyncio.run(_measure(cluster.url(cluster.create_database()), args.rows))
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({"pg_rows": results}, indent=1))


if __name__ == "__main__":
    main()
