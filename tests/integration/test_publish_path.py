"""The publish route's short path (``api/publish_path.py``) answers exactly as the FastAPI route.

Two applications on one runtime and one database (SQLite and PostgreSQL): one with the short
path, one without it, so that every publish goes through FastAPI. Each request is sent to both;
status, error envelope, the headers a client reads, and (for accepted events) the event must
be the same. The refusals come from the route in both cases (the short path hands them on), so
this also checks that the hand-over loses nothing of the body, including chunked ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from prometora_webhooks.api.app import create_app
from prometora_webhooks.api.publish_path import PublishPath
from prometora_webhooks.config import Settings
from prometora_webhooks.runtime import Runtime
from prometora_webhooks.storage.migrate import upgrade_async
from tests.support.service import ORDER

ADMIN = "admin-token-for-the-publish-path"
KIB = 1024
GOOD = json.dumps({"type": "order.created", "data": ORDER}).encode()
COMPARED_HEADERS = ("content-type", "idempotent-replayed", "retry-after", "allow")


@dataclass(frozen=True)
class Req:
    """One publish request; ``store`` is "business", "free", or a literal store id."""

    content: bytes | Callable[[], Iterator[bytes]] = GOOD
    store: str = "business"
    token: str | None = ADMIN  # "store-key": the business store's API key
    headers: dict[str, str] = field(default_factory=dict)


def _chunks(payload: bytes, size: int = 8 * KIB) -> Callable[[], Iterator[bytes]]:
    def gen() -> Iterator[bytes]:
        for i in range(0, len(payload), size):
            yield payload[i : i + size]

    return gen


def _event(data: Any, type_: Any = "order.created", **extra: Any) -> bytes:
    return json.dumps({"type": type_, "data": data, **extra}).encode()


NESTED = b'{"type":"order.created","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
OVER_CAP = b'{"type":"order.created","data":{"id":"' + b"x" * (256 * KIB) + b'"}}'

CASES = [
    pytest.param(Req(), id="accepted"),
    pytest.param(Req(content=_chunks(GOOD, 100)), id="accepted-chunked"),
    pytest.param(Req(headers={"Content-Type": "text/plain"}), id="accepted-any-content-type"),
    pytest.param(
        Req(headers={"Content-Type": "application/vnd.shop+json; charset=utf-8"}),
        id="accepted-plus-json",
    ),
    pytest.param(Req(headers={"Content-Type": "text/json"}), id="text-json"),
    pytest.param(Req(token=None), id="no-token"),
    pytest.param(Req(token="Basic abc"), id="wrong-scheme"),
    pytest.param(Req(token="Bearer nope"), id="wrong-token"),
    pytest.param(Req(token="store-key"), id="store-key"),
    pytest.param(Req(content=b""), id="empty-body"),
    pytest.param(Req(content=b"{not json"), id="malformed"),
    pytest.param(Req(content=b"[1, 2]"), id="array"),
    pytest.param(Req(content=b'{"type": "order.created"}'), id="missing-data"),
    pytest.param(Req(content=_event(ORDER, extra=1)), id="unknown-field"),
    pytest.param(Req(content=_event(ORDER, type_=7)), id="type-not-a-string"),
    pytest.param(Req(content=_event(ORDER, type_="t" * 129)), id="type-too-long"),
    pytest.param(Req(content=_event(ORDER, type_="order.exploded")), id="unknown-type"),
    pytest.param(Req(content=_event({**ORDER, "total": "9999"})), id="schema-refuses-data"),
    pytest.param(Req(content=b"\xff\xfe{}"), id="not-utf8"),
    pytest.param(Req(content=NESTED), id="deeply-nested"),
    pytest.param(Req(content=OVER_CAP), id="over-the-cap"),
    pytest.param(Req(content=_chunks(OVER_CAP)), id="over-the-cap-chunked"),
    pytest.param(Req(store="nosuchstore"), id="unknown-store"),
    pytest.param(Req(store="s" * 65), id="store-id-too-long"),
    pytest.param(Req(store="free"), id="store-off-plan"),
    pytest.param(Req(headers={"Idempotency-Key": "k" * 256}), id="idempotency-key-too-long"),
    pytest.param(Req(headers={"Idempotency-Key": ""}), id="idempotency-key-empty"),
]


@dataclass
class World:
    runtime: Runtime
    apps: dict[str, FastAPI]
    stores: dict[str, str]
    store_key: str


@pytest.fixture
def world(db_url: str, secret_key: str) -> Iterator[tuple[World, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()

    async def build() -> World:
        await upgrade_async(db_url)
        rt = Runtime.build(Settings(database_url=db_url, admin_token=ADMIN, secret_key=secret_key))
        await rt.auth.init()
        business, key = await rt.stores.create("Test Shop", "business")
        free, _ = await rt.stores.create("Free Shop", "free")
        apps = {"short": create_app(rt), "route": create_app(rt, publish_path=False)}
        return World(rt, apps, {"business": business.id, "free": free.id}, key)

    w = loop.run_until_complete(build())
    yield w, loop
    loop.run_until_complete(w.runtime.close())
    loop.close()


async def _clients(w: World) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    for name, app in w.apps.items():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield name, client


async def _send(w: World, client: httpx.AsyncClient, req: Req) -> httpx.Response:
    headers = dict(req.headers)
    if req.token == "store-key":
        headers["Authorization"] = f"Bearer {w.store_key}"
    elif req.token == ADMIN:
        headers["Authorization"] = f"Bearer {ADMIN}"
    elif req.token is not None:
        headers["Authorization"] = req.token
    store = w.stores.get(req.store, req.store)
    url = f"/v1/stores/{store}/events"
    if not callable(req.content):
        return await client.post(url, content=req.content, headers=headers)
    chunks = req.content

    async def stream() -> AsyncIterator[bytes]:  # chunked: no Content-Length
        for chunk in chunks():
            yield chunk

    return await client.post(url, content=stream(), headers=headers)


def _comparable(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    if r.status_code in (200, 202):  # the event: its id and time are its own
        assert body["id"].startswith("evt_")
        assert body["created"]
        body = {k: v for k, v in body.items() if k not in ("id", "created")}
    return {
        "status": r.status_code,
        "body": body,
        "headers": {h: r.headers.get(h) for h in COMPARED_HEADERS},
    }


def test_the_short_path_is_in_the_default_application(
    world: tuple[World, asyncio.AbstractEventLoop],
) -> None:
    w, _ = world
    assert any(m.cls is PublishPath for m in w.apps["short"].user_middleware)
    assert not any(m.cls is PublishPath for m in w.apps["route"].user_middleware)


@pytest.mark.parametrize("req", CASES)
def test_both_paths_answer_alike(world: tuple[World, asyncio.AbstractEventLoop], req: Req) -> None:
    w, loop = world

    async def run() -> dict[str, dict[str, Any]]:
        return {name: _comparable(await _send(w, c, req)) async for name, c in _clients(w)}

    answers = loop.run_until_complete(run())
    assert answers["short"] == answers["route"]
    status = answers["short"]["status"]
    if status == 202:
        assert answers["short"]["body"]["type"] == "order.created"
        assert answers["short"]["headers"]["content-type"] == "application/json"
    else:
        assert set(answers["short"]["body"]) == {"error"}, answers


def test_an_idempotent_replay_is_the_first_event_on_either_path(
    world: tuple[World, asyncio.AbstractEventLoop],
) -> None:
    """Each path replays the event the other one accepted, with the same headers."""
    w, loop = world

    async def run() -> None:
        firsts: dict[str, dict[str, Any]] = {}
        async for name, client in _clients(w):
            r = await _send(w, client, Req(headers={"Idempotency-Key": f"key-{name}"}))
            assert r.status_code == 202, r.text
            assert "idempotent-replayed" not in r.headers
            firsts[name] = r.json()
        async for name, client in _clients(w):
            other = "route" if name == "short" else "short"
            r = await _send(w, client, Req(headers={"Idempotency-Key": f"key-{other}"}))
            assert r.status_code == 200, r.text
            assert r.headers["idempotent-replayed"] == "true"
            assert r.json() == firsts[other]

    loop.run_until_complete(run())
