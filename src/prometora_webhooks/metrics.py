"""Prometheus metrics. Counters live in the process that does the work (serve, worker, api);
queue gauges are read from the database when /metrics is scraped."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter(
    "prometora_webhooks_attempts",
    "Delivery attempts made, by outcome and trigger",
    ["outcome", "trigger"],
)
ATTEMPT_SECONDS = Histogram(
    "prometora_webhooks_attempt_duration_seconds",
    "Time from the start of an attempt to its response (or failure)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DROPPED = Counter(
    "prometora_webhooks_deliveries_dropped",
    "Queued deliveries dropped without an attempt (endpoint disabled/deleted, store off plan)",
)
DISABLED = Counter(
    "prometora_webhooks_endpoints_disabled",
    "Endpoints disabled automatically, by reason",
    ["reason"],
)
PUBLISHED = Counter("prometora_webhooks_events_published", "Events accepted for publishing")
QUEUE_DEPTH = Gauge(
    "prometora_webhooks_queue_depth", "Deliveries due now and not yet claimed by a worker"
)
QUEUE_OLDEST_AGE = Gauge(
    "prometora_webhooks_queue_oldest_due_age_seconds",
    "How long the oldest due delivery has been waiting",
)
