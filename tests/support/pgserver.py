"""A throwaway PostgreSQL cluster for the test session (or the one named by PW_TEST_POSTGRES_URL).

Each test gets its own database, copied from a migrated template (fast: a file copy).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    datadir: Path | None
    bindir: Path | None
    _as_user: list[str]

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        psql = str(self.bindir / "psql") if self.bindir else "psql"
        out = subprocess.run(
            [
                psql,
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
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

    def create_database(self, template: str | None = None) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        tmpl = f" TEMPLATE {template}" if template else ""
        self.psql(f"CREATE DATABASE {name}{tmpl}")
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _ctl(self, *args: str) -> None:
        assert self.bindir is not None
        assert self.datadir is not None
        subprocess.run(
            [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        if self.datadir is not None:
            self._ctl("stop", "-m", mode, "-w")

    def start(self) -> None:
        if self.datadir is not None:
            self._ctl("start", "-w", "-l", str(self.datadir / "server.log"))

    def restart(self) -> None:
        self.stop("immediate")
        self.start()


def start_server(base: Path) -> PgServer:
    url = os.environ.get("PW_TEST_POSTGRES_URL")
    if url:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        return PgServer(
            u.hostname or "127.0.0.1", u.port or 5432, u.username or "postgres", None, _pg_bin(), []
        )
    bindir = _pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found: run `make test` (installs them)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to `postgres`
        base = Path(tempfile.mkdtemp(prefix="pw-test-pg-"))
        base.chmod(0o755)
        datadir = base / "pgdata"
        datadir.mkdir(mode=0o700)
        shutil.chown(datadir, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    else:
        datadir = base / "pgdata"
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
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    # fsync=off: a server crash (immediate stop) keeps every commit, since the WAL still reaches
    # the OS at commit; only a machine crash could lose it. synchronous_commit stays on, as in
    # production: with it off, an immediate stop loses commits that were already acknowledged.
    conf = (
        f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
        "fsync = off\nfull_page_writes = off\n"
        "max_connections = 300\nshared_buffers = 128MB\n"
    )
    with open(datadir / "postgresql.conf", "a") as fh:
        fh.write(conf)
    server = PgServer("127.0.0.1", port, "postgres", datadir, bindir, as_user)
    server.start()
    return server
