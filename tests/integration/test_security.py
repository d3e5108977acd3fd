"""Secrets hygiene, hostile bytes, key rotation, rate limiting, and a fuzzed API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import MetaData, select
from standardwebhooks.webhooks import Webhook

from prometora_webhooks.crypto import SecretBox, parse_key
from prometora_webhooks.delivery.client import Sender, SendResult, make_session
from prometora_webhooks.delivery.guard import check_host
from prometora_webhooks.domain.catalog import Catalog
from prometora_webhooks.domain.errors import UrlRejected
from prometora_webhooks.services.endpoints import EndpointService
from prometora_webhooks.services.stores import StoreService
from prometora_webhooks.storage.database import Database
from prometora_webhooks.storage.migrate import upgrade
from tests.support.listener import Listener
from tests.support.receiver import Receiver, wait_until
from tests.support.service import ORDER, Service


@dataclass
class DashboardVisit:
    link_token: str
    session: str
    csrf: str
    pages: list[str]  # the signed-in pages (their forms carry the CSRF token, by design)
    refusals: list[str]  # every error page the visit met


def visit_dashboard(svc: Service, store_id: str, endpoint_id: str) -> DashboardVisit:
    """Sign in with a one-time link as a browser would, act through a form, and meet the
    dashboard's refusals (used link, missing CSRF token, ended session)."""
    r = svc.admin("POST", f"/v1/stores/{store_id}/dashboard-links")
    assert r.status_code == 201, r.text
    link = urlsplit(r.json()["url"])
    link_token = parse_qs(link.query)["token"][0]
    login_path = f"{link.path}?{link.query}"
    pages: list[str] = []
    refusals: list[str] = []
    with httpx.Client(base_url=svc.base_url, timeout=30) as browser:
        r = browser.get(login_path)
        assert r.status_code == 303, r.text
        session = browser.cookies.get("prometora_dashboard", path="/dashboard")
        assert session
        page = browser.get("/dashboard/webhooks")
        assert page.status_code == 200, page.text
        pages.append(page.text)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text[:2000]
        csrf = found.group(1)
        # a state change through a form (the token is checked, then the secret rotated)
        done = browser.post(
            f"/dashboard/webhooks/endpoints/{endpoint_id}/rotate-secret",
            data={"csrf_token": csrf},
        )
        assert done.status_code == 303, done.text
        pages.append(browser.get(done.headers["location"]).text)
        pages.append(browser.get("/dashboard/webhooks/live").text)
        # refusals: a form without the token, a form with a wrong one, the used link again
        for data in ({}, {"csrf_token": csrf[:-1] + ("0" if csrf[-1] != "0" else "1")}):
            refused = browser.post(
                f"/dashboard/webhooks/endpoints/{endpoint_id}/disable", data=data
            )
            assert refused.status_code == 403, refused.text
            refusals.append(refused.text)
        reused = browser.get(login_path)
        assert reused.status_code == 410, reused.text
        refusals.append(reused.text)
        unknown = browser.get(login_path + "x")
        assert unknown.status_code == 400, unknown.text
        refusals.append(unknown.text)
        out = browser.post("/dashboard/logout", data={"csrf_token": csrf})
        assert out.status_code == 200, out.text
        refusals.append(out.text)
    # the ended session, replayed by hand
    with httpx.Client(base_url=svc.base_url, timeout=30) as stale:
        stale.cookies.set("prometora_dashboard", session, path="/dashboard")
        ended = stale.post(
            f"/dashboard/webhooks/endpoints/{endpoint_id}/disable", data={"csrf_token": csrf}
        )
        assert ended.status_code == 401, ended.text
        refusals.append(ended.text)
    return DashboardVisit(link_token, session, csrf, pages, refusals)


def dump_database(url: str) -> str:
    """Every row of every table (found by reflection, not from our own table list), as text."""

    async def read() -> str:
        db = Database(url)
        try:
            async with db.read() as conn:
                reflected = MetaData()
                await conn.run_sync(lambda sync: reflected.reflect(sync))
                out: list[str] = []
                for table in reflected.sorted_tables:
                    out.append(f"== {table.name}")
                    for row in (await conn.execute(select(table))).all():
                        for value in row:
                            if isinstance(value, bytes | bytearray | memoryview):
                                out.append(bytes(value).decode("utf-8", "replace"))
                            else:
                                out.append(str(value))
                return "\n".join(out)
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_no_secret_reaches_logs_metrics_errors_or_the_delivery_log(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = make_service()
    svc.start()
    store_id, key1 = svc.create_store()
    header_value = "Bearer hdr-credential-5f2c9a7e"
    # A receiver that echoes credentials back must not get them into our log.
    receiver.script("/echo", statuses=[500], body=header_value.encode() + b" echoed")
    ep = svc.create_endpoint(
        key1, receiver.url("/echo"), headers={"Authorization": header_value}, description="x"
    )
    ok = svc.create_endpoint(key1, receiver.url("/ok"))
    rotated = svc.request("POST", f"/v1/endpoints/{ep['id']}/secret/rotate", key1).json()["secret"]
    key2 = svc.admin("POST", f"/v1/stores/{store_id}/api-key/rotate").json()["api_key"]
    assert svc.publish(store_id).status_code == 202
    assert (
        svc.request(
            "POST", f"/v1/endpoints/{ok['id']}/test", key2, json={"type": "seller.registered"}
        ).status_code
        == 202
    )
    receiver.wait_for(3, "/echo")  # original + 2 retries
    receiver.wait_for(2, "/ok")
    assert receiver.received("/echo")[0].headers["Authorization"] == header_value
    visit = visit_dashboard(svc, store_id, ok["id"])
    dashboard_rotated = svc.request("GET", f"/v1/endpoints/{ok['id']}/secret", key2).json()
    assert dashboard_rotated["secret"] != ok["secret"]  # the dashboard's form really acted
    # error bodies that might reflect what was sent
    errors = [
        svc.request("GET", "/v1/endpoints", key1).text,  # revoked key
        svc.request(
            "POST",
            "/v1/endpoints",
            key2,
            json={
                "url": "ftp://x",
                "events": ["order.created"],
                "headers": {"Authorization": header_value},
            },
        ).text,
        svc.admin(
            "POST",
            f"/v1/stores/{store_id}/events",
            content=b'{"type": "order.created", "data": ' + header_value.encode(),
        ).text,
        # the dashboard's tokens, presented where they are not credentials
        svc.request("GET", "/v1/endpoints", visit.session).text,
        svc.request("GET", "/v1/endpoints", visit.link_token).text,
        *visit.refusals,
    ]
    attempts = json.dumps(svc.attempts(key2, ep["id"]) + svc.attempts(key2, ok["id"]))
    listed = json.dumps(svc.request("GET", "/v1/endpoints", key2).json())
    metrics = svc.http.get(svc.base_url + "/metrics").text
    svc.stop_all()
    logs = svc.logs()
    secrets = {
        "admin token": svc.admin_token,
        "api key (revoked)": key1,
        "api key": key2,
        "signing secret (old)": ep["secret"],
        "signing secret (new)": rotated,
        "signing secret (dashboard-rotated)": dashboard_rotated["secret"],
        "SECRET_KEY": svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"],
        "custom header value": header_value,
        "custom header token": "hdr-credential-5f2c9a7e",
        "dashboard link token": visit.link_token,
        "dashboard session cookie": visit.session,
        "dashboard CSRF token": visit.csrf,
    }
    # the raw key bytes of the signing secrets, in any encoding we might print
    for name in ("signing secret (old)", "signing secret (new)"):
        secrets[name + " key"] = secrets[name].removeprefix("whsec_")
    places = {
        "logs": logs,
        "metrics": metrics,
        "errors": "\n".join(errors),
        "delivery log": attempts,
        "endpoint list": listed,
    }
    leaks = [f"{s} in {p}" for p, text in places.items() for s, v in secrets.items() if v in text]
    # The signed-in pages show the CSRF token (in their forms) and a secret the owner asked to
    # reveal, by design; never the link token or the session cookie.
    pages = "\n".join(visit.pages)
    leaks += [
        f"{s} in dashboard pages" for s in ("link_token", "session") if getattr(visit, s) in pages
    ]
    assert not leaks, leaks
    assert len(logs) > 500  # the grep looked at real logs, including failed attempts
    assert '"attempt failed"' in logs
    assert "[redacted] echoed" in attempts

    # A database dump holds no secret in the clear: signing secrets and custom headers are
    # encrypted, keys and tokens hashed.
    dump = dump_database(svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"])
    found = [name for name, value in secrets.items() if value in dump]
    assert not found, found
    assert "whsec_" not in dump
    assert "hdr-credential" not in dump
    # ... and the dump really is of this run: the rows and the hashes are there
    assert "== endpoints" in dump
    assert "== dashboard_tokens" in dump
    assert ep["id"] in dump
    assert ok["id"] in dump
    for token in (key2, visit.link_token):  # (the session's row went at logout)
        assert hashlib.sha256(token.encode()).hexdigest() in dump
    assert "[redacted] echoed" in dump  # attempts' response bodies were read too


def test_nul_bytes_and_invalid_utf8_are_stored_and_shown(
    service: Service, receiver: Receiver
) -> None:
    store_id, key = service.create_store()
    receiver.script("/hook", statuses=[502], body=b"\x00\xff\xfe not utf-8 \x00 end")
    ep = service.create_endpoint(key, receiver.url("/hook"))
    order = json.loads(json.dumps(ORDER))
    order["customer"]["name"] = "Nul\u0000Byte \u2603 \U0001f600"
    r = service.publish(store_id, data=order)
    assert r.status_code == 202, r.text
    (got,) = receiver.wait_for(1, "/hook")[:1]
    assert json.loads(got.body)["data"]["customer"]["name"] == "Nul\u0000Byte \u2603 \U0001f600"
    Webhook(ep["secret"]).verify(got.body, got.headers)
    (attempt,) = service.wait_attempts(key, ep["id"], 1)[-1:]
    assert attempt["http_status"] == 502
    assert attempt["response_body"] == "\x00\ufffd\ufffd not utf-8 \x00 end"
    # NUL in names and descriptions is refused cleanly (never a 500)
    bad = service.request(
        "POST",
        "/v1/endpoints",
        key,
        json={"url": receiver.url("/x"), "events": ["order.created"], "description": "a\u0000b"},
    )
    assert bad.status_code == 422, bad.text
    assert (
        service.admin(
            "POST", "/v1/stores", json={"name": "a\u0000b", "plan": "business"}
        ).status_code
        == 422
    )


def test_rate_limit_per_store_key(make_service: Callable[..., Service]) -> None:
    svc = make_service(rate_limit="1", rate_limit_burst="3")
    svc.start()
    _, key = svc.create_store()
    codes = [svc.request("GET", "/v1/endpoints", key).status_code for _ in range(6)]
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    r = svc.request("GET", "/v1/endpoints", key)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    # the platform's admin token is not limited
    assert all(svc.admin("GET", "/v1/event-types").status_code == 200 for _ in range(10))


def test_rotate_key_reencrypts_every_secret_without_losing_one(
    make_service: Callable[..., Service], receiver: Receiver, db_kind: str
) -> None:
    svc = make_service()
    old_key = svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"]
    if db_kind == "sqlite":  # the generated key file beside the database
        del svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"]
    svc.start()
    store_id, key = svc.create_store()
    ep = svc.create_endpoint(key, receiver.url("/hook"), headers={"X-Token": "tok-123456"})
    svc.stop_all()
    if db_kind == "sqlite":
        db = Path(svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"].removeprefix("sqlite:///"))
        key_path = db.with_name(db.name + ".key")
        before = key_path.read_text().strip()
        out = svc.cli("rotate-key")
        new_key = out.stdout.strip()
        assert key_path.read_text().strip() == new_key != before
    else:
        new_key = base64.b64encode(b"k" * 32).decode()
        svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = f"{new_key},{old_key}"
        out = svc.cli("rotate-key")
        assert out.stdout.strip() == new_key
        svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = new_key  # the old key is gone now
    assert re.search(r"re-encrypted 2 secrets", out.stderr), out.stderr
    svc.start()
    assert svc.publish(store_id).status_code == 202
    (got,) = receiver.wait_for(1, "/hook")
    Webhook(ep["secret"]).verify(got.body, got.headers)
    assert got.headers["X-Token"] == "tok-123456"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("caller", ["admin", "store"])
def test_schemathesis_finds_no_server_errors(service: Service, tmp_path: Path, caller: str) -> None:
    """Fuzz every documented operation as the platform and as a store: no 500s, and every
    response matches the schema."""
    store_id, store_key = service.create_store()
    token = service.admin_token if caller == "admin" else store_key
    exe = shutil.which("schemathesis") or str(
        Path(__import__("sys").executable).with_name("schemathesis")
    )
    cmd = [
        exe,
        "run",
        f"{service.base_url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "25",
        "--header",
        f"Authorization: Bearer {token}",
        # /metrics is not JSON; the event stream never ends (each case would only wait out the
        # request timeout): tests/integration/test_event_stream.py covers it directly.
        "--exclude-path-regex",
        "^/(metrics|v1/events/stream)$",
        "--no-color",
        "--seed",
        "1",
        "--request-timeout",
        "10",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out.stdout)
    assert generated, out.stdout[-3000:]
    assert int(generated.group(1)) == int(generated.group(2)) > 300
    assert store_id


def test_a_process_with_the_wrong_secret_key_holds_deliveries_without_losing_them(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = make_service(retry_delays="", worker_defer_seconds="1")
    right_key = svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"]
    svc.start()
    store_id, key = svc.create_store()
    svc.create_endpoint(key, receiver.url("/hook"))
    svc.stop_all()
    svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = base64.b64encode(b"w" * 32).decode()
    svc.start()
    ev = svc.publish(store_id).json()
    wait_until(lambda: "cannot be decrypted" in svc.logs(), 15, "the decrypt error in the log")
    assert receiver.received("/hook") == []
    svc.stop_all()
    svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = right_key
    svc.start()
    # held back (re-examined every WORKER_DEFER_SECONDS), then sent once the key is right
    (got,) = receiver.wait_for(1, "/hook", timeout=30)
    assert got.headers["webhook-id"] == ev["id"]


# -- DNS rebinding, through endpoint creation and the delivery client --------------------------


class ScriptedResolver(AbstractResolver):
    """A resolver the test controls: each host answers the next address of its script (the
    last one repeats), and every lookup is recorded."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        script = self.answers[host]
        addr = script[min(self.calls.count(host), len(script) - 1)]
        self.calls.append(host)
        return [
            ResolveResult(
                hostname=host, host=addr, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


@contextlib.contextmanager
def dialled_addresses() -> Iterator[list[Any]]:
    """Every address a socket of this event loop is connected to (aiohttp connects through
    ``loop.sock_connect``): what was dialled, not what the URL said."""
    loop = asyncio.get_running_loop()
    original = loop.sock_connect
    dialled: list[Any] = []

    async def spy(sock: socket.socket, address: Any) -> None:
        dialled.append(address)
        await original(sock, address)

    loop.sock_connect = spy  # type: ignore[method-assign]
    try:
        yield dialled
    finally:
        del loop.sock_connect  # the class's method again


@dataclass
class Parts:
    db: Database
    store_id: str
    box: SecretBox
    catalog: Catalog


@contextlib.asynccontextmanager
async def in_process(db_url: str, secret_key: str) -> AsyncIterator[Parts]:
    db = Database(db_url)
    try:
        store, _ = await StoreService(db).create("Rebinding Shop", "business")
        yield Parts(db, store.id, SecretBox(parse_key(secret_key)), Catalog.load())
    finally:
        await db.dispose()


def endpoint_service(parts: Parts, resolver: ScriptedResolver, allow_private: bool) -> Any:
    return EndpointService(
        parts.db,
        parts.box,
        parts.catalog,
        functools.partial(check_host, resolver=resolver),
        allow_http=False,
        allow_private=allow_private,
    )


def delivery_sender(ca_path: str, resolver: ScriptedResolver, allow_private: bool) -> Sender:
    """The delivery client exactly as the worker builds it, with the test's resolver."""
    session = make_session(
        allow_private=allow_private, ca_bundle=Path(ca_path), limit=10, resolver=resolver
    )
    return Sender(session, timeout=5.0, allow_http=False, allow_private=allow_private)


async def deliver(sender: Sender, url: str) -> SendResult:
    try:
        return await sender.send(url, b'{"id":"evt_1"}', {"content-type": "application/json"})
    finally:
        await sender._session.close()


def test_dns_rebinding_is_refused_at_delivery_and_no_socket_opens(
    db_url: str, secret_key: str, ca_path: str
) -> None:
    """A name that resolves to a public-looking address when the endpoint is created, and to
    127.0.0.1 when it is delivered to: the creation passes the real EndpointService check, the
    delivery is refused by the resolver's check, and nothing is dialled."""
    upgrade(db_url)

    async def scenario() -> None:
        async with in_process(db_url, secret_key) as parts, Listener() as listener:
            resolver = ScriptedResolver(
                {"rebind.example": ["93.184.216.34", "127.0.0.1"], "evil.example": ["127.0.0.1"]}
            )
            endpoints = endpoint_service(parts, resolver, allow_private=False)
            # the creation check uses this resolver: a name answering loopback is refused ...
            with pytest.raises(UrlRejected, match="loopback"):
                await endpoints.create(
                    parts.store_id, f"https://evil.example:{listener.port}/", ["order.created"]
                )
            # ... and the rebinding name passes, answering a public address this time
            ep, _ = await endpoints.create(
                parts.store_id, f"https://rebind.example:{listener.port}/hook", ["order.created"]
            )
            assert resolver.calls == ["evil.example", "rebind.example"]
            stored = await endpoints.get(parts.store_id, ep.id)

            sender = delivery_sender(ca_path, resolver, allow_private=False)
            with dialled_addresses() as dialled:
                res = await deliver(sender, stored.url)
            assert resolver.calls[-1] == "rebind.example"
            assert len(resolver.calls) == 3  # resolved again at delivery (and answered 127.0.0.1)
            assert not res.succeeded
            assert res.http_status is None
            assert res.error == "blocked: loopback address"
            assert dialled == []  # no socket was connected anywhere
            assert listener.accepted == 0

    asyncio.run(scenario())


def test_a_checked_name_is_dialled_at_the_checked_address_and_tls_verifies_the_name(
    db_url: str, secret_key: str, ca: trustme.CA, ca_path: str
) -> None:
    """The positive case: the connection goes to exactly the address the resolver answered
    (and the guard checked), while the certificate is verified against the host name."""
    upgrade(db_url)
    name = "hooks.rebinding-shop.example"
    other = "other.rebinding-shop.example"  # same address, a name the certificate lacks

    async def scenario() -> None:
        seen: list[str] = []

        async def handler(request: web.Request) -> web.Response:
            seen.append(request.host)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(ctx)
        site = web.TCPSite(runner, "127.0.0.2", 0, ssl_context=ctx)  # not 127.0.0.1
        await site.start()
        port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        try:
            async with in_process(db_url, secret_key) as parts:
                resolver = ScriptedResolver({name: ["127.0.0.2"], other: ["127.0.0.2"]})
                endpoints = endpoint_service(parts, resolver, allow_private=True)
                ep, _ = await endpoints.create(
                    parts.store_id, f"https://{name}:{port}/hook", ["order.created"]
                )
                wrong, _ = await endpoints.create(
                    parts.store_id, f"https://{other}:{port}/hook", ["order.created"]
                )
                with dialled_addresses() as dialled:
                    res = await deliver(delivery_sender(ca_path, resolver, True), ep.url)
                assert res.succeeded, res.error
                assert res.http_status == 200
                assert dialled == [("127.0.0.2", port)]
                assert seen == [f"{name}:{port}"]

                with dialled_addresses() as dialled:
                    res = await deliver(delivery_sender(ca_path, resolver, True), wrong.url)
                assert not res.succeeded
                assert res.error is not None
                assert res.error.startswith("tls:"), res.error
                assert dialled == [("127.0.0.2", port)]  # reached, then refused by TLS
                assert seen == [f"{name}:{port}"]  # no request went over it
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
