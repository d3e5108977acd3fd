"""Shared pieces: the event body, certificates, statistics, the temp workspace."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BODY_TARGET = 510  # bytes, as in limits.md
KEY_PREFIX = "bk_"  # every benchmark event carries a key "bk_<run>_<n>" the receiver finds


def bench_key(run: str, n: int) -> str:
    return f"{KEY_PREFIX}{run}_{n:07d}"


def order(key: str) -> dict[str, Any]:
    """order.created data whose delivered body is about 510 bytes (limits.md's size)."""
    return {
        "id": key,
        "total": 12498,
        "currency": "usd",
        "customer": {"email": "john.doe@example.com", "name": "John Doe"},
        "items": [
            {
                "listing_id": "lst_123",
                "title": "Handmade Pottery Mug",
                "quantity": 1,
                "price": 4999,
            },
            {
                "listing_id": "lst_456",
                "title": "Hand-thrown Stoneware Serving Bowl, speckled glaze",
                "quantity": 1,
                "price": 7499,
            },
        ],
        "note": "Please gift wrap. Leave the parcel with the neighbour if nobody answers.",
    }


def random_run_id() -> str:
    return secrets.token_hex(3)


# -- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(folder: Path) -> Certs:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    out = Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(out.ca))
    leaf.private_key_pem.write_to_path(str(out.key))
    with open(out.cert, "wb") as fh:
        for blob in leaf.cert_chain_pems:
            fh.write(blob.bytes())
    return out


# -- statistics ------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return float(sorted_values[k])


def latency_ms(values_s: Sequence[float]) -> dict[str, Any]:
    v = sorted(values_s)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "p50_ms": round(percentile(v, 50) * 1000, 2),
        "p99_ms": round(percentile(v, 99) * 1000, 2),
        "max_ms": round(v[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(v) * 1000, 2),
    }


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, digits)


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """median and min–max of the runs' values (None values are left out)."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return {"median": None, "min": None, "max": None, "runs": list(values)}
    return {
        "median": round(statistics.median(v), 3),
        "min": round(min(v), 3),
        "max": round(max(v), 3),
        "runs": [round(x, 3) if x is not None else None for x in values],
    }


def dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


# -- workspace -------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    """The only folder the benchmark writes to. World-readable (0755) so that the throwaway
    PostgreSQL cluster, which runs as the postgres user, can live inside it."""
    base = Path(tempfile.mkdtemp(prefix="prometora-bench-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        if keep:
            print(f"[bench] kept the workspace: {base}", flush=True, file=__import__("sys").stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
            if base.exists():  # files owned by postgres, when we are not root
                subprocess.run(["rm", "-rf", str(base)], check=False)


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() + (" (+ uncommitted changes under src/)" if dirty.stdout else "")


def machine() -> dict[str, Any]:
    import platform
    import ssl
    import sys

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        mem = int(fh.readline().split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_mb": mem,
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "kernel": platform.release(),
    }
