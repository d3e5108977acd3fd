"""What a batch of finished attempts does to the queue and to the endpoints' counters."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from prometora_webhooks.domain.outcomes import AttemptResult, CounterChange, Plan, plan

DELAYS = (60.0, 600.0)
NOW = 1_767_528_000_000  # epoch ms


class FixedRandom(random.Random):
    def __init__(self, value: float = 0.5) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def result(
    delivery_id: int = 1,
    *,
    endpoint: str = "we_a",
    attempt: int = 1,
    trigger: str = "scheduled",
    ok: bool = False,
    status: int | None = 500,
    started: int = NOW - 1000,
    retry_after: float | None = None,
) -> AttemptResult:
    return AttemptResult(
        delivery_id=delivery_id,
        lease_token=f"lease-{delivery_id}",
        attempt_id=f"att_{delivery_id}_{attempt}",
        endpoint_id=endpoint,
        event_id=f"evt_{delivery_id}",
        event_type="order.created",
        store_id="str_1",
        attempt=attempt,
        trigger=trigger,
        succeeded=ok,
        http_status=status,
        response_time_ms=12,
        error=None if ok else "HTTP 500",
        response_body=b"",
        started_at=started,
        retry_after=retry_after,
    )


def success(delivery_id: int = 1, **kw: object) -> AttemptResult:
    return result(delivery_id, ok=True, status=200, **kw)  # type: ignore[arg-type]


def counters(p: Plan) -> dict[str, CounterChange]:
    return {c.endpoint_id: c for c in p.counters}


def test_empty_batch() -> None:
    assert plan([], DELAYS, NOW) == Plan([], [], [], [])


# -- retries vs finished ------------------------------------------------------------------------


def test_success_finishes_the_delivery() -> None:
    p = plan([success(7)], DELAYS, NOW, FixedRandom())
    assert p.finished == [(7, "lease-7")]
    assert p.retries == []
    assert p.gone == []


@pytest.mark.parametrize(("attempt", "delay_ms"), [(1, 60_000), (2, 600_000)])
def test_scheduled_failure_is_retried_after_its_delay(attempt: int, delay_ms: int) -> None:
    p = plan([result(3, attempt=attempt)], DELAYS, NOW, FixedRandom(0.5))
    assert p.finished == []
    assert p.retries == [(3, "lease-3", attempt + 1, NOW + delay_ms)]


def test_retry_due_time_carries_the_jitter() -> None:
    low = plan([result()], DELAYS, NOW, FixedRandom(0.0)).retries[0][3]
    high = plan([result()], DELAYS, NOW, FixedRandom(0.999999)).retries[0][3]
    assert low == NOW + 54_000
    assert high == pytest.approx(NOW + 66_000, abs=1)


def test_seeded_rng_keeps_due_times_within_ten_percent() -> None:
    rng = random.Random(42)
    batch = [result(i, attempt=1 + i % 2) for i in range(200)]
    p = plan(batch, DELAYS, NOW, rng)
    assert len(p.retries) == 200
    for delivery_id, _, next_attempt, due in p.retries:
        base = DELAYS[next_attempt - 2] * 1000
        assert next_attempt == 2 + delivery_id % 2
        assert NOW + base * 0.9 <= due <= NOW + base * 1.1


def test_failure_after_the_last_delay_finishes() -> None:
    p = plan([result(4, attempt=3)], DELAYS, NOW, FixedRandom())
    assert p.finished == [(4, "lease-4")]
    assert p.retries == []


def test_no_delays_means_no_retries() -> None:
    p = plan([result(4, attempt=1)], (), NOW, FixedRandom())
    assert p.finished == [(4, "lease-4")]
    assert p.retries == []


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_manual_attempts_are_never_retried(attempt: int) -> None:
    p = plan([result(5, attempt=attempt, trigger="manual")], DELAYS, NOW, FixedRandom())
    assert p.finished == [(5, "lease-5")]
    assert p.retries == []


@pytest.mark.parametrize("status", [None, 301, 302, 400, 404, 429, 500, 502, 503, 504])
def test_every_kind_of_scheduled_failure_is_retried(status: int | None) -> None:
    p = plan([result(6, status=status)], DELAYS, NOW, FixedRandom())
    assert [r[0] for r in p.retries] == [6]
    assert p.gone == []


def test_retry_after_pushes_the_retry_out_but_at_most_an_hour() -> None:
    p = plan(
        [
            result(1, status=429, retry_after=300.0),
            result(2, status=503, retry_after=10.0),
            result(3, status=503, retry_after=99_999.0),
        ],
        DELAYS,
        NOW,
        FixedRandom(0.5),
    )
    due = {r[0]: r[3] for r in p.retries}
    assert due == {1: NOW + 300_000, 2: NOW + 60_000, 3: NOW + 3_600_000}


# -- 410 Gone -----------------------------------------------------------------------------------


def test_410_marks_the_endpoint_gone_and_is_not_retried() -> None:
    p = plan([result(8, status=410)], DELAYS, NOW, FixedRandom())
    assert p.gone == ["we_a"]
    assert p.finished == [(8, "lease-8")]
    assert p.retries == []
    assert counters(p)["we_a"].failures == 1


def test_manual_410_also_marks_gone() -> None:
    p = plan([result(8, status=410, trigger="manual")], DELAYS, NOW, FixedRandom())
    assert p.gone == ["we_a"]
    assert p.finished == [(8, "lease-8")]


def test_gone_lists_each_endpoint_once_in_order() -> None:
    batch = [
        result(1, endpoint="we_b", status=410),
        result(2, endpoint="we_a", status=410),
        result(3, endpoint="we_b", status=410),
        result(4, endpoint="we_c", status=500),
    ]
    p = plan(batch, DELAYS, NOW, FixedRandom())
    assert p.gone == ["we_b", "we_a"]
    assert [r[0] for r in p.retries] == [4]
    assert sorted(p.finished) == [(1, "lease-1"), (2, "lease-2"), (3, "lease-3")]


# -- counters -----------------------------------------------------------------------------------


def test_failures_without_a_success_add_up() -> None:
    batch = [result(i, started=NOW - 100 * i) for i in range(1, 4)]
    c = counters(plan(batch, DELAYS, NOW, FixedRandom()))["we_a"]
    assert c == CounterChange("we_a", reset=False, failures=3, last_started_at=NOW - 100)


def test_success_resets_and_counts_only_later_failures() -> None:
    batch = [result(1), result(2), success(3), result(4), result(5)]
    c = counters(plan(batch, DELAYS, NOW, FixedRandom()))["we_a"]
    assert c.reset is True
    assert c.failures == 2


def test_success_last_resets_to_zero() -> None:
    batch = [result(1), result(2), success(3)]
    c = counters(plan(batch, DELAYS, NOW, FixedRandom()))["we_a"]
    assert (c.reset, c.failures) == (True, 0)


def test_manual_success_resets_the_counter_too() -> None:
    batch = [result(1), success(2, trigger="manual")]
    c = counters(plan(batch, DELAYS, NOW, FixedRandom()))["we_a"]
    assert (c.reset, c.failures) == (True, 0)


def test_manual_failure_counts_towards_auto_disable() -> None:
    c = counters(plan([result(1, trigger="manual")], DELAYS, NOW, FixedRandom()))["we_a"]
    assert (c.reset, c.failures) == (False, 1)


def test_counters_are_per_endpoint_in_first_seen_order() -> None:
    batch = [
        result(1, endpoint="we_b", started=NOW - 50),
        success(2, endpoint="we_a", started=NOW - 40),
        result(3, endpoint="we_b", started=NOW - 90),  # finished later, started earlier
        result(4, endpoint="we_a", started=NOW - 10),
    ]
    p = plan(batch, DELAYS, NOW, FixedRandom())
    assert p.counters == [
        CounterChange("we_b", reset=False, failures=2, last_started_at=NOW - 50),
        CounterChange("we_a", reset=True, failures=1, last_started_at=NOW - 10),
    ]


def test_every_result_is_either_finished_or_retried_exactly_once() -> None:
    rng = random.Random(9)
    batch = []
    for i in range(300):
        kind = rng.choice(["ok", "fail", "gone", "manual"])
        batch.append(
            result(
                i,
                endpoint=f"we_{i % 7}",
                attempt=rng.randint(1, 4),
                trigger="manual" if kind == "manual" else "scheduled",
                ok=kind == "ok",
                status={"ok": 200, "fail": 500, "gone": 410, "manual": 500}[kind],
            )
        )
    p = plan(batch, DELAYS, NOW, rng)
    ids = [f[0] for f in p.finished] + [r[0] for r in p.retries]
    assert sorted(ids) == list(range(300))
    by_id = {r.delivery_id: r for r in batch}
    for delivery_id, token, next_attempt, due in p.retries:
        r = by_id[delivery_id]
        assert not r.succeeded
        assert r.trigger == "scheduled"
        assert r.http_status != 410
        assert r.attempt <= len(DELAYS)
        assert next_attempt == r.attempt + 1
        assert token == r.lease_token
        assert due > NOW
    assert sum(c.failures for c in p.counters) <= sum(not r.succeeded for r in batch)


def test_results_are_not_modified() -> None:
    r = result(1)
    before = replace(r)
    plan([r], DELAYS, NOW, FixedRandom())
    assert r == before
