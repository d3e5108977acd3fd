"""The benchmark's receiver: a minimal asyncio (uvloop) HTTP/1.1 server over real TLS.

It runs in its own process, pinned to its own core. For every request it parses the request
line, the headers and the body (Content-Length or chunked), checks the signature when the
path has a secret (Standard Webhooks, or django-webhook's scheme for that peer), finds the
benchmark key (``bk_…``) in the body, records (arrival time, path, key) and answers
``200 ok`` on the kept-alive connection. Paths under a "stall" prefix are read and never
answered. A second, plain-HTTP port takes control requests (config, stats, dump).

Run: ``python -m bench.receiver CERT KEY`` prints ``{"port": P, "control_port": C}``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import resource
import ssl
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import procs

OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)
OK_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)
BIN_S = 0.25


class State:
    def __init__(self) -> None:
        self.record = True
        self.verify: dict[str, tuple[str, bytes]] = {}
        self.stall: tuple[str, ...] = ()
        self.reset()
        self.open_connections = 0

    def reset(self) -> None:
        self.t = array("d")
        self.p = array("i")
        self.k: list[str] = []
        self.paths: dict[str, int] = {}
        self.count = 0
        self.stalled = 0
        self.bad_sig = 0
        self.no_key = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.bins: dict[int, int] = {}

    def configure(self, cfg: dict[str, Any]) -> None:
        if cfg.get("reset"):
            self.reset()
        if "record" in cfg:
            self.record = bool(cfg["record"])
        if "stall_prefixes" in cfg:
            self.stall = tuple(cfg["stall_prefixes"])
        for path, (scheme, secret) in (cfg.get("verify") or {}).items():
            if scheme == "sw":
                key = base64.b64decode(secret.removeprefix("whsec_"))
            else:
                key = secret.encode()
            self.verify[path] = (scheme, key)

    # -- one webhook request ----------------------------------------------------------------
    def webhook(self, path: str, headers: dict[bytes, bytes], body: bytes) -> bool:
        """Record the request; False means: do not answer (a stalled endpoint)."""
        now = time.monotonic()
        if self.stall and path.startswith(self.stall):
            self.stalled += 1
            return False
        check = self.verify.get(path)
        if check is not None and not _signature_ok(check[0], check[1], headers, body):
            self.bad_sig += 1
        i = body.find(b"bk_")
        key = ""
        if i >= 0:
            j = body.find(b'"', i)
            key = body[i:j].decode("ascii", "replace") if j > i else ""
        if not key:
            self.no_key += 1
        self.count += 1
        if self.first_t is None:
            self.first_t = now
        self.last_t = now
        b = int(now / BIN_S)
        self.bins[b] = self.bins.get(b, 0) + 1
        if self.record:
            ix = self.paths.get(path)
            if ix is None:
                ix = self.paths[path] = len(self.paths)
            self.t.append(now)
            self.p.append(ix)
            self.k.append(key)
        return True

    # -- control ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "count": self.count,
            "stalled": self.stalled,
            "bad_sig": self.bad_sig,
            "no_key": self.no_key,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "now": time.monotonic(),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
            "open_connections": self.open_connections,
        }

    def dump(self) -> dict[str, Any]:
        names = [""] * len(self.paths)
        for name, ix in self.paths.items():
            names[ix] = name
        return {"paths": names, "t": self.t.tolist(), "p": self.p.tolist(), "k": self.k}

    def timeline(self) -> dict[str, Any]:
        return {"bin_s": BIN_S, "bins": sorted(self.bins.items())}


def _signature_ok(scheme: str, key: bytes, headers: dict[bytes, bytes], body: bytes) -> bool:
    if scheme == "sw":  # Standard Webhooks (ours and django-outbound-webhooks)
        msg_id = headers.get(b"webhook-id", b"")
        ts = headers.get(b"webhook-timestamp", b"")
        mac = hmac.digest(key, msg_id + b"." + ts + b"." + body, hashlib.sha256)
        expected = b"v1," + base64.b64encode(mac)
        return expected in headers.get(b"webhook-signature", b"").split()
    if scheme == "djw":  # django-webhook: hex HMAC-SHA256 of "{timestamp}:{body}"
        ts = headers.get(b"django-webhook-request-timestamp", b"")
        mac = hmac.new(key, ts + b":" + body, hashlib.sha256).hexdigest().encode()
        return mac in headers.get(b"django-webhook-signature-v1", b"").split(b",")
    return True


def _parse(buf: bytearray) -> tuple[int, bytes, bytes, dict[bytes, bytes], bytes] | None:
    """One complete request at the start of ``buf``: (length, method, path, headers, body)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    method, target, _version = lines[0].split(b" ", 2)
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = bytearray()
        pos = start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                fin = buf.find(b"\r\n\r\n", eol)
                if fin < 0:
                    return None
                return fin + 4, method, target, headers, bytes(body)
            if len(buf) < eol + 2 + size + 2:
                return None
            body += buf[eol + 2 : eol + 2 + size]
            pos = eol + 2 + size + 2
    n = int(headers.get(b"content-length", b"0") or 0)
    if len(buf) < start + n:
        return None
    return start + n, method, target, headers, bytes(buf[start : start + n])


class _Conn(asyncio.Protocol):
    def __init__(self, state: State, control: bool) -> None:
        self.state = state
        self.control = control
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.stalled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.open_connections -= 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while not self.stalled:
            try:
                parsed = _parse(buf)
            except ValueError:
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.transport.close()
                return
            if parsed is None:
                return
            length, method, target, headers, body = parsed
            del buf[:length]
            path = target.split(b"?", 1)[0].decode("ascii", "replace")
            close = headers.get(b"connection", b"").lower() == b"close"
            assert self.transport is not None
            if self.control:
                self._control(method, path, body)
                continue
            if not self.state.webhook(path, headers, body):
                self.stalled = True  # read, never answered: the sender must time out
                return
            self.transport.write(OK_CLOSE if close else OK)
            if close:
                self.transport.close()
                return

    def _control(self, method: bytes, path: str, body: bytes) -> None:
        st = self.state
        out: Any
        if path == "/config":
            st.configure(json.loads(body or b"{}"))
            out = {"ok": True}
        elif path == "/reset":
            st.reset()
            out = {"ok": True}
        elif path == "/stats":
            out = st.stats()
        elif path == "/dump":
            out = st.dump()
        elif path == "/timeline":
            out = st.timeline()
        else:
            out = {"error": "no such path"}
        payload = json.dumps(out).encode()
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(payload)
            + payload
        )


async def _serve(cert: str, key: str) -> None:
    state = State()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    hooks = await loop.create_server(
        lambda: _Conn(state, False), "127.0.0.1", 0, ssl=ctx, backlog=4096
    )
    control = await loop.create_server(lambda: _Conn(state, True), "127.0.0.1", 0)
    ports = {
        "port": hooks.sockets[0].getsockname()[1],
        "control_port": control.sockets[0].getsockname()[1],
    }
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    try:
        import uvloop

        uvloop.run(_serve(sys.argv[1], sys.argv[2]))
    except ImportError:  # pragma: no cover
        asyncio.run(_serve(sys.argv[1], sys.argv[2]))


# -- the handle the scenarios use ----------------------------------------------------------------


class Receiver:
    """Starts the receiver process on its own core and talks to its control port."""

    def __init__(self, workdir: Path, cert: Path, key: Path, cpus: tuple[int, ...]) -> None:
        self.proc = procs.spawn(
            [procs.PY, "-m", "bench.receiver", str(cert), str(key)],
            cpus=cpus,
            env=procs.child_env(),
            cwd=workdir,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the receiver did not start")
        ports = json.loads(line)
        self.port: int = ports["port"]
        self.control_port: int = ports["control_port"]
        self._http = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=60)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):
            try:
                self._http.request("POST" if data else "GET", path, body=data)
                return json.loads(self._http.getresponse().read())
            except (http.client.HTTPException, OSError):
                self._http.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def configure(self, **cfg: Any) -> None:
        self._call("/config", cfg)

    def reset(self) -> None:
        self._call("/reset", {})

    def stats(self) -> dict[str, Any]:
        return dict(self._call("/stats"))

    def dump(self) -> dict[str, Any]:
        return dict(self._call("/dump"))

    def timeline(self) -> dict[str, Any]:
        return dict(self._call("/timeline"))

    def wait_count(
        self,
        n: int,
        timeout: float,
        idle: float = 30.0,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
        interval: float = 0.05,
    ) -> dict[str, Any]:
        """Poll until ``n`` requests arrived; stop early (returning what came) when nothing
        arrives for ``idle`` seconds or after ``timeout``."""
        start = time.monotonic()
        last_count, last_change = -1, start
        while True:
            st = self.stats()
            if on_poll is not None:
                on_poll(st)
            now = time.monotonic()
            if st["count"] >= n:
                st["complete"] = True
                return st
            if st["count"] != last_count:
                last_count, last_change = st["count"], now
            if now - last_change > idle or now - start > timeout:
                st["complete"] = False
                return st
            time.sleep(interval)

    def cpu_seconds(self) -> float:
        return procs.cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        procs.stop(self.proc, 5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._http.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
