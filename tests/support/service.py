"""The service started as a user would start it: `prometora-webhooks serve|api|worker` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .receiver import wait_until

ORDER = {
    "id": "ord_xyz789",
    "total": 9999,
    "currency": "usd",
    "customer": {"email": "john@example.com", "name": "John Doe"},
    "items": [{"listing_id": "lst_123", "title": "Handmade Pottery", "quantity": 1, "price": 9999}],
}
SELLER = {"id": "sel_1", "name": "Jane's Ceramics", "email": "jane@example.com"}
CLI = [sys.executable, "-m", "prometora_webhooks.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    args: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.popen = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Service:
    """One database, and the processes serving it."""

    workdir: Path
    env: dict[str, str]
    admin_token: str = "admin-test-token-0123456789"
    procs: list[Proc] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def spawn(self, *args: str, name: str | None = None) -> Proc:
        name = name or f"{args[0]}-{len(self.procs)}"
        proc = Proc([*CLI, *args], self.env, self.workdir, self.workdir / f"{name}.log")
        proc.start()
        self.procs.append(proc)
        return proc

    def start(self, command: str = "serve") -> Proc:
        """Start `serve` (or `api`) on a fresh port and wait until it is ready."""
        self.port = free_port()
        proc = self.spawn(command, "--port", str(self.port), name=f"{command}-{self.port}")
        self.wait_ready(proc)
        return proc

    def wait_ready(self, proc: Proc, timeout: float = 30) -> None:
        def ready() -> bool:
            if proc.popen and proc.popen.poll() is not None:
                raise AssertionError(f"service exited early:\n{proc.log()[-4000:]}")
            try:
                return self.http.get(self.base_url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, "service ready")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.popen and p.popen.poll() is None:
                try:
                    p.terminate(20)
                except subprocess.TimeoutExpired:
                    p.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()}" for p in self.procs)

    # -- API helpers ------------------------------------------------------------------------
    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    @property
    def http(self) -> httpx.Client:
        """One keep-alive client per service (a new client re-reads the CA bundle: ~30 ms)."""
        client = self.__dict__.get("_http")
        if client is None:
            client = self.__dict__["_http"] = httpx.Client(timeout=30)
        return client

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request(method, path, self.admin_token, **kwargs)

    def create_store(self, plan: str = "business", name: str = "Test Shop") -> tuple[str, str]:
        r = self.admin("POST", "/v1/stores", json={"name": name, "plan": plan})
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["api_key"]

    def create_endpoint(
        self, key: str, url: str, events: Iterable[str] = ("order.created",), **extra: Any
    ) -> dict[str, Any]:
        r = self.request(
            "POST", "/v1/endpoints", key, json={"url": url, "events": list(events), **extra}
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def publish(
        self, store_id: str, type_: str = "order.created", data: Any = None, **kwargs: Any
    ) -> httpx.Response:
        if data is None:
            data = ORDER if type_ == "order.created" else SELLER
        return self.admin(
            "POST", f"/v1/stores/{store_id}/events", json={"type": type_, "data": data}, **kwargs
        )

    def attempts(self, key: str, endpoint_id: str, limit: int = 100) -> list[dict[str, Any]]:
        r = self.request("GET", f"/v1/endpoints/{endpoint_id}/deliveries?limit={limit}", key)
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def wait_attempts(
        self, key: str, endpoint_id: str, count: int, timeout: float = 20
    ) -> list[dict[str, Any]]:
        return wait_until(  # type: ignore[no-any-return]
            lambda: len(self.attempts(key, endpoint_id)) >= count,
            timeout,
            f"{count} attempts on {endpoint_id}",
            lambda: self.attempts(key, endpoint_id),
        )

    def endpoint(self, key: str, endpoint_id: str) -> dict[str, Any]:
        r = self.request("GET", f"/v1/endpoints/{endpoint_id}", key)
        assert r.status_code == 200, r.text
        return dict(r.json())


def base_env(db_url: str, secret_key: str, ca_path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETORA_WEBHOOKS_")}
    env.update(
        PROMETORA_WEBHOOKS_DATABASE_URL=db_url,
        PROMETORA_WEBHOOKS_SECRET_KEY=secret_key,
        PROMETORA_WEBHOOKS_ADMIN_TOKEN="admin-test-token-0123456789",
        PROMETORA_WEBHOOKS_CA_BUNDLE=ca_path,
        PROMETORA_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
        PROMETORA_WEBHOOKS_RETRY_DELAYS="1,2",
        PROMETORA_WEBHOOKS_DELIVERY_TIMEOUT="2",
        PROMETORA_WEBHOOKS_WORKER_POLL_INTERVAL="0.1",
        PROMETORA_WEBHOOKS_RATE_LIMIT="0",
        PYTHONUNBUFFERED="1",
    )
    return env
