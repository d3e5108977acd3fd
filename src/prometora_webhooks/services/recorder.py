"""Writing a batch of finished attempts in one transaction (the worker's group commit)."""

from __future__ import annotations

from collections.abc import Sequence

from ..domain.models import DisabledReason
from ..domain.outcomes import AttemptResult, plan
from ..domain.timefmt import now_ms
from ..storage import attempts as attempt_q
from ..storage import endpoints as ep_q
from ..storage import events as event_q
from ..storage import queue
from ..storage.database import Database


class Recorder:
    def __init__(
        self,
        db: Database,
        delays: Sequence[float],
        disable_after: int,
        defer_seconds: float = 60.0,
    ) -> None:
        """``defer_seconds``: how long claimed rows that could not be attempted (e.g. a wrong
        SECRET_KEY) wait before they are claimed again."""
        self._db = db
        self._defer_ms = int(defer_seconds * 1000)
        self._delays = tuple(delays)
        self._disable_after = disable_after

    async def record(
        self,
        results: Sequence[AttemptResult],
        dropped: Sequence[tuple[int, str]] = (),
        deferred: Sequence[tuple[int, str]] = (),
        revived: Sequence[str] = (),
    ) -> list[tuple[str, str]]:
        """Log the attempts, finish or reschedule their deliveries, update the endpoints.

        ``revived``: endpoints that answered after failing (or before answering at all): the
        rows a worker parked for them are due at once. The success in ``results`` ends their
        parking (the counter reset).
        Returns (endpoint id, reason) for each endpoint this batch disabled.
        """
        now = now_ms()
        p = plan(results, self._delays, now)
        async with self._db.write() as conn:
            if revived:
                for endpoint_id, until in (await ep_q.parked(conn, revived, now)).items():
                    await queue.unpark(conn, endpoint_id, until, now)
            await attempt_q.log_and_finish(conn, results, [*p.finished, *dropped])
            await queue.reschedule(conn, p.retries)
            await queue.release(conn, deferred, now + self._defer_ms)
            await ep_q.apply_counters(
                conn, [(c.endpoint_id, c.reset, c.failures, c.last_started_at) for c in p.counters]
            )
            gone = await ep_q.disable(conn, p.gone, DisabledReason.GONE.value, now)
            failing = [c.endpoint_id for c in p.counters if c.failures > 0]
            failed = await ep_q.disable(
                conn,
                failing,
                DisabledReason.CONSECUTIVE_FAILURES.value,
                now,
                min_failures=self._disable_after,
            )
            await queue.drop_scheduled_for_endpoints(conn, [*gone, *failed])
        return [(e, DisabledReason.GONE.value) for e in gone] + [
            (e, DisabledReason.CONSECUTIVE_FAILURES.value) for e in failed
        ]

    async def purge(self, retention_seconds: float) -> tuple[int, int]:
        cutoff = now_ms() - int(retention_seconds * 1000)
        async with self._db.write() as conn:
            n_attempts = await attempt_q.purge(conn, cutoff)
            n_events = await event_q.purge(conn, cutoff)
        return n_attempts, n_events
