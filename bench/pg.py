"""A throwaway PostgreSQL cluster inside the workspace (the approach of tests/support/pgserver.py,
but durable: fsync and synchronous_commit stay on, as in limits.md), and small sync wrappers for
SQL from the benchmark process (SQLite via sqlite3, PostgreSQL via asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procs


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL server binaries not found (make system-deps installs them)")


@dataclass
class PgCluster:
    datadir: Path
    bindir: Path
    port: int
    as_user: list[str]
    proc: subprocess.Popen[bytes]
    statements: bool = False  # pg_stat_statements loaded (bench --pg-statements)

    @classmethod
    def start(cls, base: Path, cpus: Iterable[int], *, statements: bool = False) -> PgCluster:
        """``statements``: load pg_stat_statements, to report the costliest statements."""
        bindir = _pg_bin()
        base.mkdir(mode=0o755, exist_ok=True)
        datadir = base / "data"
        datadir.mkdir(mode=0o700)
        as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to postgres
            shutil.chown(base, "postgres", "postgres")
            shutil.chown(datadir, "postgres", "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        port = procs.free_port()
        conf = (
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
            "max_connections = 300\nshared_buffers = 256MB\nmax_wal_size = 2GB\n"
            + (
                "shared_preload_libraries = 'pg_stat_statements'\n"
                "pg_stat_statements.track_planning = on\n"
                if statements
                else ""
            )
            + "# durable, as in production: fsync, synchronous_commit and full_page_writes on\n"
        )
        with open(datadir / "postgresql.conf", "a") as fh:
            fh.write(conf)
        proc = procs.spawn(
            [*as_user, str(bindir / "postgres"), "-D", str(datadir)],
            cpus=cpus,
            log_path=None,
            stdout=subprocess.DEVNULL,
        )
        cluster = cls(datadir, bindir, port, as_user, proc, statements)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError("postgres exited at start")
            r = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                check=False,
            )
            return r.returncode == 0

        procs.wait_until(ready, 60, "PostgreSQL", interval=0.2)
        return cluster

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def create_database(self) -> str:
        name = "bench_" + uuid.uuid4().hex[:10]
        self.psql(f"CREATE DATABASE {name}")
        if self.statements:
            self.psql("CREATE EXTENSION pg_stat_statements", name)
        return name

    def top_statements(self, db: str, n: int = 15) -> list[dict[str, Any]]:
        """The database's statements by total time (execution + planning), costliest first."""
        out = self.psql(
            "SELECT json_agg(s) FROM (SELECT calls, rows,"
            " round(total_exec_time::numeric, 1) AS exec_ms,"
            " round(total_plan_time::numeric, 1) AS plan_ms,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query"
            " FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid"
            f" WHERE d.datname = '{db}'"
            f" ORDER BY total_exec_time + total_plan_time DESC LIMIT {int(n)}) s",
            db,
        )
        return list(json.loads(out or "[]"))

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "stop",
                "-m",
                "fast",
                "-w",
            ],
            check=False,
            capture_output=True,
        )
        procs.stop(self.proc, 30)


class Sql:
    """Synchronous SQL against the service's database (read-mostly: counts and checks)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None
        if self.sqlite:
            self._db = sqlite3.connect(url.split(":///", 1)[1], timeout=60)
            self._db.execute("PRAGMA busy_timeout=60000")
        else:
            import asyncpg

            self._loop = asyncio.new_event_loop()
            self._conn = self._loop.run_until_complete(asyncpg.connect(url))

    def run(self, coro: Any) -> Any:
        assert self._loop is not None
        return self._loop.run_until_complete(coro)

    def scalar(self, sql: str) -> Any:
        if self.sqlite:
            row = self._db.execute(sql).fetchone()
            self._db.commit()
            return row[0] if row else None
        return self.run(self._conn.fetchval(sql))

    def execute(self, sql: str) -> None:
        if self.sqlite:
            self._db.execute(sql)
            self._db.commit()
        else:
            self.run(self._conn.execute(sql))

    def wait_scalar(
        self, sql: str, target: int, timeout: float, interval: float = 0.02
    ) -> float | None:
        """Poll until ``sql`` returns at least ``target``; the monotonic time it did, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.scalar(sql)
            if value is not None and int(value) >= target:
                return time.monotonic()
            time.sleep(interval)
        return None

    def close(self) -> None:
        if self.sqlite:
            self._db.close()
        else:
            with contextlib.suppress(Exception):
                self.run(self._conn.close())
            assert self._loop is not None
            self._loop.close()
