"""The retry schedule: configured delays with ±10 % jitter, Retry-After, exhaustion."""

from __future__ import annotations

import math
import os
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometora_webhooks.domain.retry import (
    JITTER,
    RETRY_AFTER_CAP_S,
    next_delay,
    parse_retry_after,
)

DEFAULT = (60.0, 600.0)


class FixedRandom(random.Random):
    """random() returns a chosen value, to pin the jitter at its extremes."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_contract_constants() -> None:
    assert JITTER == 0.10
    assert RETRY_AFTER_CAP_S == 3600.0


@pytest.mark.parametrize("seed", range(5))
def test_each_retry_uses_its_delay_within_ten_percent(seed: int) -> None:
    rng = random.Random(seed)
    delays = (60.0, 600.0, 0.5, 3600.0)
    for _ in range(200):
        for attempt, base in enumerate(delays, start=1):
            delay = next_delay(delays, attempt, rng=rng)
            assert delay is not None
            assert base * 0.9 <= delay <= base * 1.1


def test_jitter_spreads_over_the_whole_band() -> None:
    rng = random.Random(1234)
    samples = [next_delay(DEFAULT, 1, rng=rng) for _ in range(2000)]
    assert min(samples) < 54.6  # reaches near -10 %
    assert max(samples) > 65.4  # and near +10 %
    assert len(set(samples)) > 1900
    mean = sum(samples) / len(samples)  # type: ignore[arg-type]
    assert 59.0 < mean < 61.0


@pytest.mark.parametrize(("r", "expected"), [(0.0, 54.0), (0.5, 60.0), (0.999999, 66.0)])
def test_jitter_extremes(r: float, expected: float) -> None:
    assert next_delay(DEFAULT, 1, rng=FixedRandom(r)) == pytest.approx(expected, abs=1e-3)


def test_seeded_rng_is_deterministic() -> None:
    a = [next_delay(DEFAULT, 2, rng=random.Random(7)) for _ in range(3)]
    b = [next_delay(DEFAULT, 2, rng=random.Random(7)) for _ in range(3)]
    assert a == b


def test_without_rng_still_jittered_within_band() -> None:
    for _ in range(200):
        delay = next_delay(DEFAULT, 2)
        assert delay is not None
        assert 540.0 <= delay <= 660.0


@pytest.mark.parametrize(
    ("delays", "attempt"),
    [(DEFAULT, 3), (DEFAULT, 4), (DEFAULT, 100), ((), 1), ((5.0,), 2), (DEFAULT, 0), (DEFAULT, -1)],
)
def test_none_when_exhausted_or_out_of_range(delays: tuple[float, ...], attempt: int) -> None:
    assert next_delay(delays, attempt, rng=random.Random(0)) is None
    assert next_delay(delays, attempt, retry_after=10.0, rng=random.Random(0)) is None


def test_the_count_of_retries_is_the_count_of_delays() -> None:
    rng = random.Random(3)
    for n in range(6):
        delays = tuple(float(i + 1) for i in range(n))
        scheduled = [a for a in range(1, 20) if next_delay(delays, a, rng=rng) is not None]
        assert scheduled == list(range(1, n + 1))


def test_zero_delay_retries_at_once() -> None:
    assert next_delay((0.0,), 1, rng=random.Random(0)) == 0.0


# -- Retry-After --------------------------------------------------------------------------------


def test_retry_after_raises_the_delay() -> None:
    delay = next_delay(DEFAULT, 1, retry_after=300.0, rng=FixedRandom(0.5))
    assert delay == 300.0


def test_retry_after_shorter_than_the_delay_changes_nothing() -> None:
    rng_value = 0.25
    plain = next_delay(DEFAULT, 2, rng=FixedRandom(rng_value))
    assert next_delay(DEFAULT, 2, retry_after=5.0, rng=FixedRandom(rng_value)) == plain
    assert next_delay(DEFAULT, 2, retry_after=0.0, rng=FixedRandom(rng_value)) == plain


@pytest.mark.parametrize("retry_after", [3600.0, 3601.0, 86400.0, 1e15, math.inf])
def test_retry_after_is_capped_at_an_hour(retry_after: float) -> None:
    assert next_delay(DEFAULT, 1, retry_after=retry_after, rng=FixedRandom(0.5)) == 3600.0


def test_configured_delay_longer_than_the_cap_wins() -> None:
    delay = next_delay((7200.0,), 1, retry_after=86400.0, rng=FixedRandom(0.5))
    assert delay == 7200.0


@pytest.mark.parametrize("seed", range(3))
def test_delay_is_max_of_jittered_delay_and_capped_retry_after(seed: int) -> None:
    for retry_after in (1.0, 59.0, 61.0, 120.0, 5000.0):
        jittered = next_delay(DEFAULT, 1, rng=random.Random(seed))
        with_ra = next_delay(DEFAULT, 1, retry_after=retry_after, rng=random.Random(seed))
        assert with_ra == max(jittered, min(retry_after, 3600.0))  # type: ignore[type-var]


NOW = datetime(2026, 1, 4, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  30 ", 30.0),
        ("007", 7.0),
        ("86400", 86400.0),
        ("Sun, 04 Jan 2026 12:02:00 GMT", 120.0),
        ("Sun, 04 Jan 2026 13:00:00 GMT", 3600.0),
        ("Sun, 04 Jan 2026 12:00:00 GMT", 0.0),
        ("Sun, 04 Jan 2026 11:00:00 GMT", 0.0),  # in the past: no extra wait
        ("Sun, 04 Jan 2026 12:02:00 +0000", 120.0),
        ("Sun, 04 Jan 2026 13:02:00 +0100", 120.0),
        ("Sun, 04 Jan 2026 12:02:00 -0000", 120.0),  # UTC, not the machine's local time
        ("04 Jan 2026 12:05:00 GMT", 300.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


def test_zone_less_http_date_is_utc_whatever_the_machine_zone() -> None:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        assert parse_retry_after("Sun, 04 Jan 2026 12:02:00 -0000", NOW) == pytest.approx(120.0)
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_parse_retry_after_of_a_formatted_http_date() -> None:
    when = datetime(2026, 1, 4, 12, 10, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == pytest.approx(600.0)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "-5",
        "1.5",
        "+10",
        "1e3",
        "soon",
        "0x10",
        "Sun, 99 Foo 2026 12:00:00 GMT",
        "Wed, 21 Oct 99999 07:28:00 GMT",
    ],
)
def test_parse_retry_after_refuses_garbage(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662\u0663", "\uff11\uff12"])
def test_parse_retry_after_ignores_non_ascii_digits(value: str) -> None:
    # str.isdigit() is true for these, and int("²") raises: a receiver must not crash us.
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("digits", [16, 400, 5000])
def test_parse_retry_after_of_huge_numbers_does_not_overflow(digits: int) -> None:
    value = parse_retry_after("9" * digits, NOW)
    assert value is not None
    assert math.isfinite(value)
    assert value > RETRY_AFTER_CAP_S
    assert next_delay(DEFAULT, 1, retry_after=value, rng=FixedRandom(0.5)) == 3600.0


@settings(max_examples=100, deadline=None, database=None)
@given(st.one_of(st.text(max_size=40), st.from_regex(r"\A\s*[0-9]{1,30}\s*\Z")))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or (math.isfinite(result) and result >= 0.0)
