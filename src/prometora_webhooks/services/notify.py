"""Wake-up of delivery workers when new work is queued in this process."""

from __future__ import annotations

import asyncio
import contextlib


class Notifier:
    """In-process wake-up; workers in other processes poll (and, on PostgreSQL, listen)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        self._event.clear()
