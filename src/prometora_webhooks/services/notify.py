"""Waking delivery workers when work is queued.

In one process an ``asyncio.Event`` is enough. Across processes on PostgreSQL, publishers
``NOTIFY`` in the same transaction as the insert and workers ``LISTEN`` on a dedicated
connection, reconnecting with backoff; workers also poll now and then, so a lost notification
only costs latency, never a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger("prometora_webhooks.notify")

CHANNEL = "prometora_webhooks_due"


class Notifier:
    """In-process wake-up."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def cross_process(self) -> bool:
        """True when other processes' publishes wake this one (so idle polls can be rare)."""
        return False

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        self._event.clear()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class PgNotifier(Notifier):
    """In-process wake-up plus PostgreSQL LISTEN on a dedicated connection."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn
        self._task: asyncio.Task[None] | None = None
        self._connected = False

    @property
    def cross_process(self) -> bool:
        return self._connected

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="pw-listen")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        import asyncpg

        backoff = 0.5
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(CHANNEL, lambda *_a: self.notify())
                self._connected = True
                backoff = 0.5
                self.notify()  # catch up on anything queued while we were not listening
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(15):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.execute("SELECT 1")  # notices a dead server promptly
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "LISTEN connection lost (%s); retrying in %.1fs",
                    exc.__class__.__name__,
                    backoff,
                )
            finally:
                self._connected = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
