"""The long-running processes freeze their start-up objects and collect the young less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from prometora_webhooks import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_settle_freezes_what_exists_and_raises_the_young_threshold() -> None:
    keep = [object() for _ in range(10)] + [[i] for i in range(1000)]
    gc.unfreeze()
    gctune.settle()
    assert gc.get_freeze_count() >= len(keep) - 10  # the lists are tracked, so frozen
    assert gc.get_threshold() == gctune.THRESHOLDS
    # A cycle made after start-up is still found and freed.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
