"""Garbage-collector settings for the long-running processes (``serve``, ``api``, ``worker``).

A full collection walks every object the collector tracks: after start-up that is about
120,000 (the libraries, the app, SQLAlchemy's caches) and took 55 ms on the reference
machine, a pause for every request and delivery in flight, which showed as latency tails.
Those objects live as long as the process, so after start-up they are frozen out of the
collections (``gc.freeze``), and the youngest generation is collected after 10,000
allocations rather than 700: a delivery makes a few hundred short-lived containers, so the
default ran a collection every few deliveries. Cycles are still found and freed.
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 20, 20)


def settle() -> None:
    """Call once, when start-up is done and before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
