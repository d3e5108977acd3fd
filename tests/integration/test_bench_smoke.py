"""The benchmark's end-to-end scenario, in a tiny configuration: it runs, and it counts every
delivery. No timing is asserted (speed is never asserted as wall-clock in `make test`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_e2e_smoke_counts_every_delivery() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "e2e",
            "--db",
            "sqlite",
            "--endpoints",
            "2",
            "--events",
            "50",
            "--clients",
            "10",
            "--warmup-events",
            "0",
            "--paced-seconds",
            "0",
            "--skip-limit",
            "--quiet-wait",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc, end = json.JSONDecoder().raw_decode(proc.stdout)
    summary = proc.stdout[end:].strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith("e2e[sqlite]:")

    run = doc["results"]["e2e-sqlite"]["runs"][0]
    burst = run["burst"]
    assert burst["published"] == burst["accepted"] == 50
    assert burst["expected_deliveries"] == 100
    assert burst["delivered"] == 100
    assert burst["complete"] is True
    assert burst["duplicates"] == 0
    assert burst["unknown_keys"] == 0
    assert burst["bad_signatures"] == 0
    assert burst["latency"]["n"] == 100
    checks = run["checks"]
    assert checks["receipts_total"] == 100
    assert checks["attempts_succeeded"] == 100
    assert checks["attempts_failed"] == 0
    assert checks["deliveries_left_in_queue"] == 0
    assert run["targets"]["every_delivery_logged"] is True
    assert set(run["peak_rss_mb"]) == {"serve"}
