"""`GET /v1/events/stream` (the server-sent events `listen` is built on), against a running
service on SQLite and PostgreSQL, and its event stream service on both databases."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from prometora_webhooks.domain.models import Event
from prometora_webhooks.services.events import encode_event
from prometora_webhooks.services.stream import EventStream
from prometora_webhooks.storage import events as event_q
from prometora_webhooks.storage.database import Database
from prometora_webhooks.storage.migrate import upgrade
from tests.support.api_helpers import module_service
from tests.support.service import ORDER, SELLER, Service

svc = module_service()
READ_TIMEOUT_S = 10.0  # a frame that does not come fails the test instead of hanging it


@dataclass
class Frame:
    lines: list[str]
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Any:
        return json.loads(self.fields["data"])


class Sse:
    """An open stream: read it frame by frame (a frame is the lines up to a blank line)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def frame(self) -> Frame:
        lines: list[str] = []
        for line in self._lines:
            if line == "":
                if lines:
                    break
                continue
            lines.append(line)
        else:
            raise EOFError(f"the stream ended; partial frame {lines!r}")
        frame = Frame(lines)
        for line in lines:
            name, _, value = line.partition(":")
            if name:
                frame.fields[name] = value.removeprefix(" ")
        return frame

    def event(self) -> Frame:
        """The next frame that is not a comment (keep-alives are skipped)."""
        while True:
            frame = self.frame()
            if not all(line.startswith(":") for line in frame.lines):
                return frame


@contextmanager
def open_stream(
    service: Service, token: str | None, query: str = "", **headers: str
) -> Iterator[Sse]:
    """Connect and wait for the ``: connected`` comment: from then on, events are sent."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", f"{service.base_url}/v1/events/stream{query}", headers=headers) as r,
    ):
        assert r.status_code == 200, r.read()
        sse = Sse(r)
        assert sse.frame().lines == [": connected"]
        yield sse


def refused(service: Service, token: str | None, query: str = "", **headers: str) -> Any:
    """A refused stream request: its status and JSON error envelope."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    r = service.http.get(f"{service.base_url}/v1/events/stream{query}", headers=headers)
    assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return r.status_code, body["error"]["code"]


def test_frames_are_id_type_and_the_event_json(svc: Service) -> None:
    store_id, key = svc.create_store()
    with open_stream(svc, key) as sse:
        assert sse.response.headers["content-type"].startswith("text/event-stream")
        assert sse.response.headers["cache-control"] == "no-cache"
        published = [
            svc.publish(store_id).json(),
            svc.publish(store_id, "seller.registered").json(),
            svc.publish(store_id, data={**ORDER, "id": "ord_third"}).json(),
        ]
        for ev in published:
            frame = sse.event()
            assert [line.split(":", 1)[0] for line in frame.lines] == ["id", "event", "data"]
            assert frame.fields["id"] == ev["id"]
            assert frame.fields["event"] == ev["type"]
            assert frame.data == ev  # the event exactly as the API returned it
            assert set(frame.data) == {"id", "type", "created", "data"}


def test_resume_with_last_event_id_gets_what_was_missed(svc: Service) -> None:
    store_id, key = svc.create_store()
    other_id, _ = svc.create_store(name="Other")
    with open_stream(svc, key) as sse:
        first = svc.publish(store_id).json()
        assert sse.event().fields["id"] == first["id"]
    # Disconnected: these are missed ...
    missed = [
        svc.publish(store_id, "seller.registered", SELLER).json()["id"],
        svc.publish(store_id, data={**ORDER, "id": "ord_missed"}).json()["id"],
    ]
    # ... and come first, in order, on a stream that resumes after the last one seen.
    with open_stream(svc, key, **{"Last-Event-ID": first["id"]}) as sse:
        assert [sse.event().fields["id"] for _ in missed] == missed
        live = svc.publish(store_id).json()["id"]
        assert sse.event().fields["id"] == live, "nothing is sent twice"
    # Without Last-Event-ID (or with an id that is not this store's) the stream starts now.
    other_event = svc.publish(other_id).json()["id"]
    for headers in ({}, {"Last-Event-ID": other_event}, {"Last-Event-ID": "evt_unknown"}):
        with open_stream(svc, key, **headers) as sse:
            fresh = svc.publish(store_id).json()["id"]
            assert sse.event().fields["id"] == fresh, headers


def test_a_store_key_never_sees_another_stores_events(svc: Service) -> None:
    a_id, a_key = svc.create_store(name="A")
    b_id, b_key = svc.create_store(name="B")
    with (
        open_stream(svc, a_key) as a,
        open_stream(svc, b_key) as b,
        open_stream(svc, svc.admin_token, f"?store_id={b_id}") as admin_b,
    ):
        b_events = [svc.publish(b_id).json()["id"] for _ in range(3)]
        a_event = svc.publish(a_id).json()["id"]
        # Events come in publishing order: B's three would come before A's one.
        assert a.event().fields["id"] == a_event
        assert [b.event().fields["id"] for _ in b_events] == b_events
        assert [admin_b.event().fields["id"] for _ in b_events] == b_events
        later = svc.publish(b_id).json()["id"]
        assert admin_b.event().fields["id"] == later, "the admin stream is B's alone"
    # A store key names only its own store.
    assert refused(svc, a_key, f"?store_id={b_id}") == (404, "not_found")
    with open_stream(svc, a_key, f"?store_id={a_id}") as a:
        own = svc.publish(a_id).json()["id"]
        assert a.event().fields["id"] == own


def test_admin_needs_a_store_id(svc: Service) -> None:
    assert refused(svc, svc.admin_token) == (422, "validation_error")
    assert refused(svc, svc.admin_token, "?store_id=") == (422, "validation_error")
    assert refused(svc, svc.admin_token, "?store_id=str_doesnotexist") == (404, "not_found")


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("Bearer wrong-token", 401, "unauthorized"),
        ("Bearer sk_not_a_real_key", 401, "unauthorized"),
        ("Basic YWRtaW46YWRtaW4=", 401, "unauthorized"),
        ("Bearer", 401, "unauthorized"),
    ],
)
def test_bad_auth_gets_the_error_envelope(
    svc: Service, authorization: str | None, status: int, code: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert refused(svc, None, **headers) == (status, code)


def test_bad_last_event_id_is_a_validation_error(svc: Service) -> None:
    _, key = svc.create_store()
    assert refused(svc, key, **{"Last-Event-ID": "evt_" + "x" * 100}) == (422, "validation_error")


def test_a_rotated_api_key_ends_its_open_stream(svc: Service) -> None:
    store_id, key = svc.create_store()
    with open_stream(svc, key) as sse:
        r = svc.admin("POST", f"/v1/stores/{store_id}/api-key/rotate")
        assert r.status_code == 200, r.text
        frame = sse.event()  # within the re-check interval (2 s), well inside READ_TIMEOUT_S
        assert frame.fields["event"] == "error"
        assert frame.data["error"]["code"] == "unauthorized"
        with pytest.raises(EOFError):
            sse.frame()
    assert refused(svc, key) == (401, "unauthorized")
    with open_stream(svc, r.json()["api_key"]) as sse:
        ev = svc.publish(store_id).json()["id"]
        assert sse.event().fields["id"] == ev


# -- the stream service, on each database ----------------------------------------------------


def _event(store_id: str, created_at: int, id_: str) -> Event:
    return Event(
        id_,
        store_id,
        "order.created",
        created_at,
        encode_event(id_, "order.created", created_at, ORDER),
    )


def test_events_that_become_visible_out_of_order_are_sent_once(db_url: str) -> None:
    """Ids are random and an event's time is taken before it commits, so events appear out of
    (created_at, id) order: one sorting before an event already sent (the same millisecond,
    a smaller id; or an earlier time committed later). Each is still sent, and only once;
    one from before the stream started is not."""
    upgrade(db_url)

    async def run() -> list[list[str]]:
        db = Database(db_url)
        stream = EventStream(db)
        store = "str_streamtest"
        try:
            start = await stream.start_after(store, None)
            t = start[0] + 50
            batches: list[list[str]] = []
            follow = stream.follow(store, start)

            async def insert(*evs: Event) -> None:
                async with db.write() as conn:
                    for ev in evs:
                        await event_q.insert(conn, ev, None)

            async def until(ids: set[str]) -> None:
                seen: set[str] = set()
                deadline = time.monotonic() + 10
                while not ids <= seen:
                    assert time.monotonic() < deadline, (ids, batches)
                    batch = [ev.id for ev in await follow.__anext__()]
                    batches.append(batch)
                    seen.update(batch)

            await insert(_event(store, t, "evt_m"))
            await until({"evt_m"})
            # the same millisecond with a smaller id, and an earlier time, committed later;
            # and one from before the stream began, committed just as late
            await insert(
                _event(store, t, "evt_a"),
                _event(store, t - 40, "evt_z"),
                _event(store, start[0] - 1, "evt_before"),
            )
            await until({"evt_a", "evt_z"})
            await insert(_event(store, t + 1, "evt_n"))
            await until({"evt_n"})
            await follow.aclose()
            return batches
        finally:
            await db.dispose()

    batches = asyncio.run(run())
    sent = [i for batch in batches for i in batch]
    assert sorted(sent) == ["evt_a", "evt_m", "evt_n", "evt_z"], batches
