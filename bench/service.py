"""The service under test, started as a user starts it: ``prometora-webhooks serve`` on SQLite,
``prometora-webhooks api`` plus N ``prometora-webhooks worker`` processes on PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from . import procs
from .context import Context
from .pg import Sql

ADMIN = "bench-admin-token-0123456789abcdef"
CLI = str(procs.BIN / "prometora-webhooks")


@dataclass
class Service:
    ctx: Context
    db: str
    workers: int = 2
    env_extra: dict[str, str] = field(default_factory=dict)
    name: str = "svc"
    procs_: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.dir = self.ctx.workdir / f"{self.name}-{self.ctx.next_id()}"
        self.dir.mkdir()
        self.pg_db: str | None = None
        self.pg_statements: list[dict[str, Any]] = []  # --pg-statements, filled at stop()
        if self.db == "sqlite":
            self.url = f"sqlite:///{self.dir / 'webhooks.db'}"
        else:
            pg = self.ctx.pg()
            self.pg_db = pg.create_database()
            self.url = pg.url(self.pg_db)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETORA_WEBHOOKS_")}
        env.update(
            PROMETORA_WEBHOOKS_DATABASE_URL=self.url,
            PROMETORA_WEBHOOKS_ADMIN_TOKEN=ADMIN,
            PROMETORA_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
            PROMETORA_WEBHOOKS_CA_BUNDLE=str(self.ctx.certs.ca),
        )
        if self.db != "sqlite":  # required with PostgreSQL; SQLite keeps a key file beside the db
            env["PROMETORA_WEBHOOKS_SECRET_KEY"] = base64.b64encode(
                secrets.token_bytes(32)
            ).decode()
        for item in self.ctx.opt("set", None) or []:  # --set NAME=VALUE, for A/B runs
            name, _, value = item.partition("=")
            env["PROMETORA_WEBHOOKS_" + name.upper().removeprefix("PROMETORA_WEBHOOKS_")] = value
        env.update(self.env_extra)
        self.env = env
        self.http = httpx.Client(timeout=60)

    # -- processes --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        n = sum(1 for name, _ in self.procs_ if name.startswith(role))
        name = f"{role}{n + 1 if role == 'worker' else ''}"
        p = procs.spawn(
            [CLI, role, *args],
            cpus=self.ctx.cores.others,
            env=self.env,
            cwd=self.dir,
            log_path=self.dir / f"{name}.log",
        )
        self.procs_.append((name, p))
        return p

    def start(self, api_only: bool = False) -> Service:
        """SQLite: one ``serve``. PostgreSQL: one ``api`` and ``workers`` workers.
        ``api_only``: one ``api`` process and no worker, on either database."""
        self.port = procs.free_port()
        role = "serve" if self.db == "sqlite" and not api_only else "api"
        p = self._spawn(role, "--port", str(self.port))
        self._wait_ready(p, role)
        if self.db != "sqlite" and not api_only:
            self.start_workers(self.workers)
        return self

    def start_workers(self, n: int) -> None:
        started = [self._spawn("worker") for _ in range(n)]
        for p in started:
            name = next(nm for nm, q in self.procs_ if q is p)
            log = self.dir / f"{name}.log"

            def worker_started(p: subprocess.Popen[bytes] = p, log: Path = log) -> bool:
                return self._alive(p, log) and "worker started" in log.read_text()

            procs.wait_until(worker_started, 60, f"{name} started")

    def _alive(self, p: subprocess.Popen[bytes], log: Path) -> bool:
        if p.poll() is not None:
            raise RuntimeError(f"{log.name} exited:\n{log.read_text(errors='replace')[-3000:]}")
        return True

    def _wait_ready(self, p: subprocess.Popen[bytes], role: str) -> None:
        log = self.dir / f"{role}.log"

        def ready() -> bool:
            self._alive(p, log)
            try:
                return self.http.get(self.base_url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        procs.wait_until(ready, 90, f"{role} ready", interval=0.05)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs_ if p.poll() is None}

    def peak_rss_mb(self) -> dict[str, float | None]:
        return {name: procs.peak_rss_mb(pid) for name, pid in self.pids().items()}

    def rss_mb(self) -> dict[str, float | None]:
        return {name: procs.rss_mb(pid) for name, pid in self.pids().items()}

    def cpu_s(self) -> dict[str, float]:
        return {name: procs.cpu_seconds(pid) for name, pid in self.pids().items()}

    def stop_workers(self) -> None:
        for name, p in self.procs_:
            if name.startswith(("worker", "serve")):
                procs.stop(p, 40)

    def stop(self) -> None:
        for _name, p in reversed(self.procs_):
            procs.stop(p, 40)
        self.procs_.clear()
        self.http.close()
        if self.pg_db is not None and self.ctx._pg is not None:
            if self.ctx._pg.statements:
                self.pg_statements = self.ctx.pg().top_statements(self.pg_db)
            self.ctx.pg().drop_database(self.pg_db)

    def logs_tail(self, n: int = 2000) -> str:
        out = []
        for name, _ in self.procs_:
            with contextlib.suppress(OSError):
                out.append(f"--- {name}\n" + (self.dir / f"{name}.log").read_text()[-n:])
        return "\n".join(out)

    def sql(self) -> Sql:
        return Sql(self.url)

    # -- API --------------------------------------------------------------------------------
    def call(self, method: str, path: str, token: str = ADMIN, **kw: Any) -> Any:
        for _ in range(5):
            r = self.http.request(
                method, self.base_url + path, headers={"authorization": f"Bearer {token}"}, **kw
            )
            if r.status_code == 429:  # a store key's rate limit: wait as told
                time.sleep(float(r.headers.get("retry-after", "1")))
                continue
            if r.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
            return r.json()
        raise RuntimeError(f"{method} {path}: still rate-limited after 5 tries")

    def create_store(self, name: str) -> tuple[str, str]:
        out = self.call("POST", "/v1/stores", json={"name": name, "plan": "business"})
        return out["id"], out["api_key"]

    def create_endpoint(
        self, key: str, url: str, events: tuple[str, ...] = ("order.created",)
    ) -> dict[str, Any]:
        return dict(
            self.call("POST", "/v1/endpoints", token=key, json={"url": url, "events": list(events)})
        )

    def setup_endpoints(
        self, paths: list[str], per_store: int = 100, verify: bool = True
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Stores (at most ``per_store`` endpoints each: the service caps a store at 100) and one
        endpoint per receiver path. Returns (store ids, endpoints); registers the secrets with
        the receiver so that it checks every signature."""
        rx = self.ctx.receiver()
        stores: list[str] = []
        eps: list[dict[str, Any]] = []
        key = ""
        for i, path in enumerate(paths):
            if i % per_store == 0:
                sid, key = self.create_store(f"Bench store {len(stores) + 1}")
                stores.append(sid)
            ep = self.create_endpoint(key, rx.url(path))
            ep["path"] = path
            ep["store_id"] = stores[-1]
            eps.append(ep)
        if verify:
            rx.configure(verify={ep["path"]: ["sw", ep["secret"]] for ep in eps})
        return stores, eps
