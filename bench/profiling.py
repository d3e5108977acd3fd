"""py-spy on a service process during a phase (``py-spy record -f raw``), and a summary of the
raw (collapsed-stack) output: where the samples are, by function and by library."""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from . import procs

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")

# Leaf frames are put in the first bucket whose pattern occurs in their file path.
BUCKETS = [
    ("TLS (ssl)", ("/ssl.py", "sslproto", "ssl_")),
    ("aiohttp client (deliveries)", ("aiohttp/",)),
    ("uvicorn/starlette/fastapi (API)", ("uvicorn/", "starlette/", "fastapi/")),
    ("pydantic", ("pydantic",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("aiosqlite / sqlite3", ("aiosqlite/", "sqlite3/")),
    ("asyncpg", ("asyncpg/",)),
    ("jsonschema / referencing", ("jsonschema/", "referencing/", "rpds")),
    ("prometheus_client", ("prometheus_client/",)),
    ("prometora_webhooks (the service's own code)", ("prometora_webhooks/",)),
    ("logging", ("logging/",)),
    ("asyncio / uvloop", ("asyncio/", "uvloop/")),
    ("json / orjson / hmac / hashlib / base64", ("json/", "hmac.py", "hashlib", "base64.py")),
    ("threading / queue (aiosqlite thread)", ("threading.py", "queue.py")),
]


class Profiler:
    def __init__(self, pid: int, out: Path, cpus: tuple[int, ...], rate: int = 100) -> None:
        self.out = out
        self.proc = procs.spawn(
            [
                str(procs.BIN / "py-spy"),
                "record",
                "-p",
                str(pid),
                "-f",
                "raw",
                "-o",
                str(out),
                "-r",
                str(rate),
                "--gil",  # only the thread holding the GIL: Python CPU time, not idle threads
            ],
            cpus=cpus,
            log_path=out.with_suffix(".log"),
        )

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self.out.exists():
            log = self.out.with_suffix(".log")
            return {
                "error": log.read_text(errors="replace")[-500:] if log.exists() else "no output"
            }
        return summarize(self.out)


def _split(frame: str) -> tuple[str, str]:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), m.group("file")


def _short(file: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    total = 0
    leaf: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        total += n
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        func, file = _split(frames[-1])
        leaf[f"{func} ({_short(file)})"] += n
        buckets[_bucket(file)] += n
        seen: set[str] = set()
        for fr in frames:
            fn, fl = _split(fr)
            label = f"{fn} ({_short(fl)})"
            if label not in seen:
                seen.add(label)
                incl[label] += n

    def pct(c: Counter[str]) -> list[list[Any]]:
        return [[k, round(100 * v / total, 1)] for k, v in c.most_common(top)] if total else []

    return {
        "samples": total,
        "by_library_self_pct": pct(buckets),
        "self_pct": pct(leaf),
        "inclusive_pct": pct(incl),
        "raw_file": str(path),
    }


def _bucket(file: str) -> str:
    for name, pats in BUCKETS:
        if any(p in file for p in pats):
            return name
    return "other: " + _short(file).split("/")[0]
