"""The delivery worker: claim due deliveries, send them concurrently, record results in batches.

One loop claims as many due rows as it has free slots (lease = timeout + margin), starts one
task per delivery, and a recorder task writes finished attempts in grouped transactions.
An endpoint never has more than ``worker_per_endpoint_limit`` attempts in flight here: a claim
leases no row over an endpoint's room, and an endpoint at its cap is left out of the next
claims, so one slow or backlogged endpoint cannot take every slot. An endpoint gets that cap
only while its latest attempt here succeeded: one that has not answered here yet (a new
endpoint, a worker just started) or whose latest attempt failed (a receiver that times out,
refuses or errors) gets at most ``FAILING_ENDPOINT_LIMIT`` until an attempt succeeds. A stalled
receiver then ties up a few slots and connections, not 32, from its first attempts on, and its
timeouts come back in small waves instead of bursts of TLS handshakes and failure records; a
healthy one is at full width one round trip after its first attempts.
Such an endpoint that stays at that cap (it is slow to answer or to fail: timeouts) has its
due backlog *parked*: moved ``3 × DELIVERY_TIMEOUT`` into the future, and so are its newly due
rows (parked rows coming due), at most once a second, while the endpoint is still stalled. Its
new events are queued already parked until then (the endpoint's ``parked_until``, which the
fan-out reads), so a steadily stalled endpoint costs no re-parking. Parking is a task of its
own, in transactions of a few hundred rows, so that claims never wait for it.
Those rows could not be claimed anyway, and otherwise every claim, for every other endpoint,
would step over them in the due index (a claim cost ~2 ms per 10,000 such rows). When the
receiver answers again (a success here while the endpoint was not at full width), its parking
ends and its rows parked until then are due at once.
Stopping: no new claims; in-flight attempts get until their deadline; results are flushed.
Anything cut off is claimed again by a worker after its lease ends.
A lease token starts with the claiming process's id in hex (``"1a2b-…"``), so an operator (or a
test) can tell from the queue which worker holds a row.
A store off the Business plan gets nothing: its claimed deliveries, scheduled or manual (test
sends, resends), are dropped unattempted, like those of a disabled endpoint; a disabled endpoint
still takes manual sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import metrics
from ..config import Settings
from ..crypto import DecryptError, SecretBox
from ..domain import ids
from ..domain.catalog import Catalog
from ..domain.messages import MessageRenderer
from ..domain.outcomes import AttemptResult
from ..domain.plans import has_webhooks
from ..domain.retry import parse_retry_after
from ..domain.timefmt import now_ms
from ..services.notify import Notifier
from ..services.recorder import Recorder
from ..signing import secret_key, signature_header
from ..storage import endpoints as ep_q
from ..storage import events as event_q
from ..storage import queue
from ..storage.database import Database
from ..storage.queue import Claimed
from .client import USER_AGENT, Sender, make_session

log = logging.getLogger("prometora_webhooks.worker")

LEASE_MARGIN_S = 15.0
MAX_CLAIM = 500
CLAIM_SCAN_FACTOR = 2  # due rows a claim looks at, per row it may take (room per endpoint)
MAX_CLAIM_SCAN = 2000
MAX_ROOM_ENTRIES = 500  # endpoints whose own room a claim is told (the others: the narrow cap)
MAX_IDLE_S = 5.0
NEXT_DUE_TTL_S = 1.0  # how long a read of the next due time is reused
CLAIM_GATHER_S = 0.005
RECORD_GATHER_S = 0.005  # longest wait for more finished attempts before logging a batch
RECORD_BATCH = 256  # finished attempts that are logged without waiting for more
FAILING_ENDPOINT_LIMIT = 4  # in flight per endpoint here until its latest attempt succeeded
# Rows moved per transaction when parking a stalled endpoint's backlog. Parking runs in a task
# of its own, never inside a claim: 2,000 rows in one claim's transaction took ~0.1 s on
# PostgreSQL, five stalled endpoints half a second, and every healthy delivery waited for it.
PARK_CHUNK = 500
# A stalled endpoint's newly due rows (new events, parked rows coming due) are parked again at
# most this often: claims step over at most that long's worth of them (at 1,600 a second, a
# 30-second wait meant ~5 ms per claim on SQLite).
PARK_EVERY_MS = 1000
GAUGE_INTERVAL_S = 10.0  # longest idle wait when other processes' publishes wake us (LISTEN)


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    format: str
    store_id: str
    enabled: bool  # scheduled deliveries go to enabled endpoints only
    on_plan: bool  # the store is on the Business plan: nothing at all is sent otherwise
    keys: tuple[bytes, ...]
    headers: dict[str, str]
    undecryptable: bool = False  # SECRET_KEY does not match: wait for the right key, drop nothing


class Worker:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        box: SecretBox,
        notifier: Notifier,
        renderer: MessageRenderer | None = None,
    ) -> None:
        self._s = settings
        self._renderer = renderer or MessageRenderer(Catalog.load())
        self._db = db
        self._box = box
        self._notifier = notifier
        self._recorder = Recorder(
            db, settings.retry_delays, settings.disable_after, settings.worker_defer_seconds
        )
        self._results: list[AttemptResult] = []
        self._dropped: list[tuple[int, str]] = []
        self._deferred: list[tuple[int, str]] = []  # claimed, not attempted, to try again later
        self._have_results = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._cap_freed = asyncio.Event()  # an endpoint at its in-flight cap got a slot back
        self._inflight: set[asyncio.Task[None]] = set()
        self._per_endpoint: Counter[str] = Counter()
        self._ok: set[str] = set()  # endpoints whose latest attempt here succeeded: full cap
        self._room_bound: list[str] = []  # took all the room the last claim gave them
        self._revived: list[str] = []  # succeeded while not in _ok: their parked rows come due
        self._saturated_since: dict[str, int] = {}  # endpoint → ms since it is at its cap
        self._parked_at: dict[str, int] = {}  # endpoint → ms of its backlog's last parking
        self._park_wanted = asyncio.Event()  # a claim saw a stalled endpoint to park
        timeout_ms = int(settings.delivery_timeout * 1000)
        self._park_ms = 3 * timeout_ms
        self._park_after_ms = min(2000, timeout_ms // 2)  # at its cap this long: stalled
        self._stopping = asyncio.Event()
        self._next_due: tuple[int, int | None] | None = None  # (read at, next available_at)
        self._next_due_version = 0  # counts _forget_next_due() calls
        self._min_claim = max(1, settings.worker_concurrency // 8)
        self.recorded = 0  # attempts written to the log by this worker
        self.lease_prefix = f"{os.getpid():x}-"  # every lease token of this process starts so

    def stop(self) -> None:
        self._stopping.set()
        self._slot_free.set()
        self._notifier.notify()

    async def run(self) -> None:
        session = make_session(
            allow_private=self._s.allow_private_networks,
            ca_bundle=self._s.ca_bundle,
            limit=self._s.worker_concurrency,
        )
        sender = Sender(
            session,
            timeout=self._s.delivery_timeout,
            allow_http=self._s.allow_http,
            allow_private=self._s.allow_private_networks,
        )
        log.info("worker claiming", extra={"pid": os.getpid(), "lease_prefix": self.lease_prefix})
        recorder_task = asyncio.create_task(self._record_loop(), name="pw-recorder")
        purge_task = asyncio.create_task(self._purge_loop(), name="pw-purge")
        gauge_task = asyncio.create_task(self._gauge_loop(), name="pw-gauges")
        park_task = asyncio.create_task(self._park_loop(), name="pw-park")
        try:
            await self._claim_loop(sender)
        finally:
            purge_task.cancel()
            gauge_task.cancel()
            park_task.cancel()
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=self._s.delivery_timeout + 1)
            for t in self._inflight:
                t.cancel()
            self._stopping.set()
            self._have_results.set()
            with contextlib.suppress(Exception):
                await recorder_task
            await self._flush()
            sender.close()
            await session.close()
            with contextlib.suppress(asyncio.CancelledError):
                await purge_task

    # -- claiming ---------------------------------------------------------------------------
    async def _claim_loop(self, sender: Sender) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            free = await self._room()
            if free <= 0:
                continue
            want = min(free, MAX_CLAIM)
            try:
                # From here on, a slot freed at an endpoint at its cap is a reason to claim
                # again (see _nap): it may have had due rows this claim had to leave.
                self._cap_freed.clear()
                batch, jobs = await self._claim(want)
                # Sends start before anything else: the idle wait below is a query too.
                for claimed, target, event_type, body in jobs:
                    self._start(sender, claimed, target, event_type, body)
                idle = len(batch) < want and await self._idle_wait()
                backoff = 0.5
            except Exception as exc:
                if isinstance(exc, SQLAlchemyError | OSError | TimeoutError):
                    log.warning(
                        "database unavailable while claiming; retrying",
                        extra={"error": exc.__class__.__name__, "retry_in_s": backoff},
                    )
                else:  # a bug: say so, and keep the worker alive
                    log.exception("unexpected error while claiming; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if idle:
                await self._nap(idle)

    async def _nap(self, idle: float) -> None:
        """Wait until more may be claimable: a notification or ``idle`` seconds, and, while
        some endpoint was left out of the claim for being at its in-flight cap, an attempt to
        such an endpoint finishing (otherwise an endpoint's backlog would go out one cap's worth
        per poll interval). Claim again at once when a slot freed at such an endpoint since
        the claim, or when an endpoint that got all the room the claim gave it has room again:
        the room was counted before the claim's round trips, attempts that finished meanwhile
        are reported by nothing, and waiting then for a notification (none comes once
        publishing has stopped) left a burst's last rows due for the whole idle wait (5 s on
        PostgreSQL, the poll interval on SQLite)."""
        if self._cap_freed.is_set() or any(
            self._per_endpoint[ep] < self._cap(ep) for ep in self._room_bound
        ):
            await asyncio.sleep(CLAIM_GATHER_S)  # let a few more finish: one claim for them
            return
        if not self._saturated():
            await self._notifier.wait(idle)
            return
        waits = [
            asyncio.ensure_future(self._notifier.wait(idle)),
            asyncio.ensure_future(self._cap_freed.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        # Let a few more finish, so that one claim refills several slots.
        await asyncio.sleep(CLAIM_GATHER_S)

    async def _room(self) -> int:
        """Free slots to fill. While busy, gather a chunk (each claim is a transaction), but
        never wait more than CLAIM_GATHER_S after the first slot frees up."""
        loop = asyncio.get_running_loop()
        first_free: float | None = None
        while not self._stopping.is_set():
            free = self._s.worker_concurrency - len(self._inflight)
            if free > 0 and first_free is None:
                first_free = loop.time()
            waited = loop.time() - first_free if first_free is not None else 0.0
            if free >= self._min_claim or (
                free > 0 and (not self._inflight or waited >= CLAIM_GATHER_S)
            ):
                return free
            self._slot_free.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if free <= 0 else CLAIM_GATHER_S - waited):
                    await self._slot_free.wait()
        return 0

    async def _idle_wait(self) -> float:
        """How long to sleep when nothing more is due: until the next due row, within bounds.

        The next due time is read at most every NEXT_DUE_TTL_S (a query per claim cost a
        round trip per event at low rates); a retry this worker schedules reads it afresh."""
        if not self._notifier.cross_process:
            return self._s.worker_poll_interval
        now = now_ms()
        cached = self._next_due
        if cached is None or now - cached[0] >= NEXT_DUE_TTL_S * 1000:
            version = self._next_due_version
            async with self._db.read() as conn:
                cached = (now, await queue.next_due(conn))
            # The recorder or the park task may have scheduled work while this read ran: then
            # this value is used for this wait only (their notify() cuts it short anyway).
            if version == self._next_due_version:
                self._next_due = cached
        next_at = cached[1]
        if next_at is None:
            return MAX_IDLE_S
        return max(0.01, min(MAX_IDLE_S, (next_at - now) / 1000))

    def _forget_next_due(self) -> None:
        """Work was scheduled here (a retry, parked rows): the next idle wait reads afresh."""
        self._next_due = None
        self._next_due_version += 1

    async def _claim(
        self, limit: int
    ) -> tuple[list[Claimed], list[tuple[Claimed, _Target, str, bytes]]]:
        """Claim due rows and load what sending them needs. On PostgreSQL that is two round
        trips (each costs a context switch on a busy machine); on SQLite the loading happens
        after the claim, in a read transaction, so that publishes are not kept waiting for the
        one writer."""
        now = now_ms()
        lease_until = now + int((self._s.delivery_timeout + LEASE_MARGIN_S) * 1000)
        token = self.lease_prefix + secrets.token_hex(8)
        saturated = self._saturated()
        room = self._room_left(saturated)
        default_room = self._untried_cap()
        if self._stalled(now):
            self._park_wanted.set()
        # The statement leases no row over an endpoint's room: all of them are sent.
        # PostgreSQL: two round trips, no transaction around them: the claim (one statement,
        # its own transaction) brings the events' bodies, and one query the endpoints and
        # their secrets. SQLite: the claim in a write transaction; the rest is loaded below.
        sqlite = self._db.is_sqlite
        loaded = None
        async with self._db.write() if sqlite else self._db.autocommit() as conn:
            claimed = await queue.claim(
                conn,
                now,
                lease_until,
                token,
                limit,
                room=room,
                default_room=default_room,
                scan=min(CLAIM_SCAN_FACTOR * limit, MAX_CLAIM_SCAN),
                exclude_endpoints=saturated,
                with_events=not sqlite,
            )
            if claimed and not sqlite:
                loaded = await self._load(conn, claimed, now, bodies_claimed=True)
        if not claimed:
            self._room_bound = []
            return [], []
        # Endpoints that got all the room they were given may have more rows due (see _nap).
        self._room_bound = [
            ep
            for ep, n in Counter(c.endpoint_id for c in claimed).items()
            if n >= room.get(ep, default_room)
        ]
        if loaded is None:
            async with self._db.read() as conn:
                loaded = await self._load(conn, claimed, now, bodies_claimed=False)
        return claimed, self._prepare(claimed, *loaded)

    def _room_left(self, saturated: list[str]) -> dict[str, int]:
        """Endpoint → attempts it may still get here, where that is not the claim's default
        (``_untried_cap()``): the ones in flight, and the ones at full width (bounded: past
        MAX_ROOM_ENTRIES, an idle healthy endpoint gets the default in this claim, and its
        full width from the next one on, once it is in flight)."""
        full = set(saturated)
        room = {ep: self._cap(ep) - n for ep, n in self._per_endpoint.items() if ep not in full}
        for ep in self._ok:
            if len(room) >= MAX_ROOM_ENTRIES:
                break
            if ep not in room and ep not in full:
                room[ep] = self._cap(ep)
        return room

    def _untried_cap(self) -> int:
        return min(self._s.worker_per_endpoint_limit, FAILING_ENDPOINT_LIMIT)

    def _saturated(self) -> list[str]:
        """Endpoints at their in-flight cap here: left out of claims until a slot frees."""
        full = [ep for ep, n in self._per_endpoint.items() if n >= self._cap(ep)]
        now, since = now_ms(), self._saturated_since
        self._saturated_since = {ep: since.get(ep, now) for ep in full}
        return full

    def _stalled(self, now: int) -> list[str]:
        """Endpoints at the narrow cap (failing, or no answer yet) that have been at it a while
        (``_saturated_since``, as the claim's ``_saturated()`` left it) and whose due rows
        were not parked in the last PARK_EVERY_MS."""
        return [
            ep
            for ep, since in self._saturated_since.items()
            if ep not in self._ok
            and now - since >= self._park_after_ms
            and now - self._parked_at.get(ep, -PARK_EVERY_MS) >= PARK_EVERY_MS
        ]

    async def _park_loop(self) -> None:
        """Park stalled endpoints' due rows when a claim asks for it, a chunk per transaction
        (between chunks, claims, sends and publishes get their turn)."""
        while True:
            await self._park_wanted.wait()
            self._park_wanted.clear()
            try:
                await self._park(now_ms())
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                # The claim loop reports the database; the next claim asks again.
                log.debug("parking failed", extra={"error": repr(exc)[:200]})
            except Exception:  # a bug: say so, and keep parking
                log.exception("unexpected error while parking")

    async def _park(self, now: int) -> None:
        for ep in self._stalled(now):
            parked, until = 0, now + self._park_ms
            while not self._stopping.is_set():
                async with self._db.write() as conn:
                    if not parked:  # its new events are queued already parked (as long)
                        until = await ep_q.park_new(conn, ep, now, until)
                    moved = await queue.park(conn, ep, now, until, PARK_CHUNK)
                parked += moved
                if moved < PARK_CHUNK:  # all of it: only rows queued from now on are left due
                    self._parked_at[ep] = now
                    break
                await asyncio.sleep(0)
            if parked:
                self._forget_next_due()
                log.info(
                    "stalled endpoint: queued deliveries wait",
                    extra={"endpoint_id": ep, "deliveries": parked, "wait_s": (until - now) / 1000},
                )
        if len(self._parked_at) > 10_000:  # bounded: forgetting only parks sooner
            self._parked_at = {
                ep: t for ep, t in self._parked_at.items() if now - t < PARK_EVERY_MS
            }

    def _cap(self, endpoint_id: str) -> int:
        if endpoint_id in self._ok:
            return self._s.worker_per_endpoint_limit
        return self._untried_cap()

    @staticmethod
    async def _load(
        conn: AsyncConnection, batch: list[Claimed], now: int, *, bodies_claimed: bool
    ) -> tuple[dict[str, ep_q.DeliveryTarget], dict[str, tuple[str, bytes]]]:
        """The batch's endpoints, and event id → (type, body) of its events that still exist:
        read here, or taken from the rows if the claim brought them (``bodies_claimed``)."""
        rows = await ep_q.targets(conn, list({c.endpoint_id for c in batch}), now)
        if not bodies_claimed:
            return rows, await event_q.bodies(conn, list({c.event_id for c in batch}))
        return rows, {
            c.event_id: (c.event_type, c.body)
            for c in batch
            if c.event_type is not None and c.body is not None
        }

    def _prepare(
        self,
        batch: list[Claimed],
        rows: dict[str, ep_q.DeliveryTarget],
        bodies: dict[str, tuple[str, bytes]],
    ) -> list[tuple[Claimed, _Target, str, bytes]]:
        """Targets for a claimed batch; drop what may not be sent, defer what cannot yet."""
        targets = {ep_id: self._target(row) for ep_id, row in rows.items()}
        rendered: dict[tuple[str, str], bytes] = {}  # one body per (event, format)
        jobs = []
        for c in batch:
            target = targets.get(c.endpoint_id)
            ev = bodies.get(c.event_id)
            if target is not None and target.undecryptable:
                self._deferred.append((c.id, c.lease_token))
            elif (
                target is None
                or ev is None
                or not target.keys
                or not target.on_plan
                or (c.trigger == "scheduled" and not target.enabled)
            ):
                self._dropped.append((c.id, c.lease_token))
            else:
                key = (c.event_id, target.format)
                if key not in rendered:
                    rendered[key] = self._render(target.format, ev[1])
                jobs.append((c, target, ev[0], rendered[key]))
        if self._dropped or self._deferred:
            self._have_results.set()
        return jobs

    def _render(self, fmt: str, body: bytes) -> bytes:
        try:
            return self._renderer.render(fmt, body)
        except Exception as exc:  # a template problem must not stop deliveries
            log.error("message template failed", extra={"format": fmt, "error": repr(exc)[:200]})
            return body

    def _target(self, row: ep_q.DeliveryTarget) -> _Target:
        keys: list[bytes] = []
        headers: dict[str, str] = {}
        undecryptable = False
        try:
            for enc in row.secrets_enc:
                keys.append(secret_key(self._box.decrypt(enc, f"secret:{row.id}").decode()))
            if row.headers_enc:
                headers = json.loads(self._box.decrypt(row.headers_enc, f"headers:{row.id}"))
        except (DecryptError, ValueError):
            log.error(
                "stored secret cannot be decrypted with SECRET_KEY; deliveries wait",
                extra={"endpoint_id": row.id},
            )
            keys = []
            undecryptable = True
        return _Target(
            row.url,
            row.format,
            row.store_id,
            row.enabled,
            has_webhooks(row.plan),
            tuple(keys),
            headers,
            undecryptable,
        )

    # -- sending ----------------------------------------------------------------------------
    def _start(
        self, sender: Sender, c: Claimed, target: _Target, event_type: str, body: bytes
    ) -> None:
        self._per_endpoint[c.endpoint_id] += 1
        task = asyncio.create_task(self._deliver(sender, c, target, event_type, body))
        self._inflight.add(task)
        endpoint_id = c.endpoint_id
        task.add_done_callback(lambda t: self._done(t, endpoint_id))

    def _done(self, task: asyncio.Task[None], endpoint_id: str) -> None:
        self._inflight.discard(task)
        # Left out of the last claim for being at its cap (which a success may have raised
        # since), or at it now: wake the claim loop.
        if endpoint_id in self._saturated_since or self._per_endpoint[endpoint_id] >= self._cap(
            endpoint_id
        ):
            self._cap_freed.set()
        self._per_endpoint[endpoint_id] -= 1
        if self._per_endpoint[endpoint_id] <= 0:
            del self._per_endpoint[endpoint_id]
        self._slot_free.set()

    async def _deliver(
        self, sender: Sender, c: Claimed, target: _Target, event_type: str, body: bytes
    ) -> None:
        started = now_ms()
        ts = int(time.time())
        headers = {
            **target.headers,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": c.event_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signature_header(target.keys, c.event_id, ts, body),
        }
        res = await sender.send(target.url, body, headers)
        if target.headers and res.body:
            res.body = _redact(res.body, target.headers.values())
        retry_after = None
        if res.http_status in (429, 503) and res.retry_after:
            retry_after = parse_retry_after(res.retry_after, time.time())
        result = AttemptResult(
            delivery_id=c.id,
            lease_token=c.lease_token,
            attempt_id=ids.new_id(ids.ATTEMPT),
            endpoint_id=c.endpoint_id,
            event_id=c.event_id,
            event_type=event_type,
            store_id=target.store_id,
            attempt=c.attempt,
            trigger=c.trigger,
            succeeded=res.succeeded,
            http_status=res.http_status,
            response_time_ms=res.response_time_ms,
            error=res.error,
            response_body=res.body,
            started_at=started,
            retry_after=retry_after,
        )
        if res.succeeded:
            if c.endpoint_id not in self._ok:
                self._revived.append(c.endpoint_id)
                if len(self._ok) >= 100_000:  # bounded memory; forgetting narrows a moment
                    self._ok.clear()
                self._ok.add(c.endpoint_id)
        else:
            self._ok.discard(c.endpoint_id)
            log.info(
                "attempt failed",
                extra={
                    "attempt_id": result.attempt_id,
                    "event_id": c.event_id,
                    "endpoint_id": c.endpoint_id,
                    "attempt": c.attempt,
                    "http_status": res.http_status,
                    "error": res.error,
                },
            )
        self._results.append(result)
        self._have_results.set()

    # -- recording --------------------------------------------------------------------------
    async def _purge_loop(self) -> None:
        """Delete attempts and events older than the retention period, now and then."""
        while True:
            try:
                n_attempts, n_events = await self._recorder.purge(self._s.retention_seconds)
                if n_attempts or n_events:
                    log.info(
                        "purged old delivery log",
                        extra={"attempts": n_attempts, "events": n_events},
                    )
            except Exception as exc:
                log.warning("purge failed; will try again", extra={"error": repr(exc)[:200]})
            await asyncio.sleep(self._s.purge_interval)

    async def _gauge_loop(self) -> None:
        """Keep the queue gauges of this process's /metrics current (worker --metrics-port)."""
        while True:
            await asyncio.sleep(GAUGE_INTERVAL_S)
            try:
                now = now_ms()
                async with self._db.read() as conn:
                    depth, oldest = await queue.stats(conn, now)
                metrics.QUEUE_DEPTH.set(depth)
                metrics.QUEUE_OLDEST_AGE.set(max(0.0, (now - oldest) / 1000) if oldest else 0.0)
            except Exception as exc:
                log.debug("queue gauges not updated", extra={"error": repr(exc)[:200]})

    async def _record_loop(self) -> None:
        while not (self._stopping.is_set() and not self._inflight):
            await self._have_results.wait()
            self._have_results.clear()
            await self._gather()
            await self._flush()

    async def _gather(self) -> None:
        """Wait a moment for more attempts to finish, so that one transaction logs them all:
        until nothing is in flight, RECORD_BATCH are waiting, or RECORD_GATHER_S has passed.
        An event's deliveries finish a few milliseconds apart; logged one transaction (and
        one fsync) each, they cost several times what they cost in a batch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_GATHER_S
        while (
            self._inflight
            and len(self._results) < RECORD_BATCH
            and not self._stopping.is_set()
            and (left := deadline - loop.time()) > 0
        ):
            self._have_results.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._have_results.wait()

    async def _flush(self) -> None:
        failures = 0
        while self._results or self._dropped or self._deferred:
            results, self._results = self._results, []
            dropped, self._dropped = self._dropped, []
            deferred, self._deferred = self._deferred, []
            revived, self._revived = self._revived, []
            try:
                disabled = await self._recorder.record(results, dropped, deferred, revived)
            except Exception as exc:
                log.warning(
                    "database unavailable while recording attempts; will retry",
                    extra={"attempts": len(results), "error": str(exc)[:300]},
                )
                self._results[:0] = results
                self._dropped[:0] = dropped
                self._deferred[:0] = deferred
                self._revived[:0] = revived
                failures += 1
                await asyncio.sleep(min(2.0**failures, 30.0))
                if self._stopping.is_set() and failures >= 5:
                    # Leases run out and the deliveries are made again; nothing is lost.
                    return
                if not self._stopping.is_set():
                    self._have_results.set()
                    return
                continue
            self.recorded += len(results)
            self._count(results, dropped, disabled)
            if (
                deferred
                or revived
                or any(not r.succeeded and r.trigger == "scheduled" for r in results)
            ):  # a retry is now scheduled, or parked rows are due: recompute the idle wait
                self._forget_next_due()
                self._notifier.notify()

    @staticmethod
    def _count(
        results: list[AttemptResult],
        dropped: list[tuple[int, str]],
        disabled: list[tuple[str, str]],
    ) -> None:
        counts = Counter(("succeeded" if r.succeeded else "failed", r.trigger) for r in results)
        for (outcome, trigger), n in counts.items():
            metrics.ATTEMPTS.labels(outcome, trigger).inc(n)
        observe = metrics.ATTEMPT_SECONDS.observe
        for r in results:
            observe(r.response_time_ms / 1000)
        if dropped:
            metrics.DROPPED.inc(len(dropped))
        for endpoint_id, reason in disabled:
            metrics.DISABLED.labels(reason).inc()
            log.warning("endpoint disabled", extra={"endpoint_id": endpoint_id, "reason": reason})


def _redact(body: bytes, values: Iterable[str]) -> bytes:
    """Keep custom header values (credentials) out of the log, even if a receiver echoes them."""
    for value in values:
        if len(value) >= 6:
            body = body.replace(value.encode(), b"[redacted]")
    return body
