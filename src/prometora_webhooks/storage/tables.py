"""The schema. Times are integer epoch milliseconds; bodies are the exact bytes sent."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Autoincrement integer keys: BIGSERIAL on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

stores = Table(
    "stores",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan", String(64), nullable=False),
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("store_id", String(64), nullable=False, index=True),
    Column("url", String(2048), nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("events", Text, nullable=False),  # JSON list of type names
    Column("format", String(16), nullable=False, default="standard"),
    Column("headers_enc", Text, nullable=True),  # encrypted JSON object
    Column("header_names", Text, nullable=False, default="[]"),  # JSON list
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(32), nullable=True),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_triggered_at", BigInteger, nullable=True),
    # A stalled endpoint's deliveries wait until then (ms): the worker that parks its backlog
    # sets it, so that its new events are queued already parked; a success clears it.
    Column("parked_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

endpoint_secrets = Table(
    "endpoint_secrets",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(64), nullable=False, index=True),
    Column("secret_enc", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),  # NULL: the current secret
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("endpoint_id", String(64), primary_key=True),
    Column("event_type", String(128), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Index("ix_subscriptions_store_type", "store_id", "event_type"),
)

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("type", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    # "published" (fanned out to subscribers) or "test" (sent to one endpoint by a test send)
    Column("kind", String(16), nullable=False, server_default="published"),
    UniqueConstraint("store_id", "idempotency_key"),
    Index("ix_events_created_at", "created_at"),
    Index("ix_events_store_created", "store_id", "created_at"),
)

# The durable queue: one row per (event, endpoint) still to be attempted. ``available_at`` is
# when it may next be claimed: its due time, or the end of a worker's lease while claimed.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("trigger", String(16), nullable=False, default="scheduled"),
    Column("available_at", BigInteger, nullable=False),
    Column("lease_token", String(32), nullable=True),
    Index("ix_deliveries_available_at", "available_at"),
    Index("ix_deliveries_endpoint", "endpoint_id"),
    Index("ix_deliveries_event", "event_id"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("endpoint_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("store_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("response_time_ms", Integer, nullable=False),
    Column("error", String(300), nullable=True),
    Column("response_body", LargeBinary, nullable=False),
    Column("attempted_at", BigInteger, nullable=False),
    Index("ix_attempts_endpoint_time", "endpoint_id", "attempted_at"),
    Index("ix_attempts_attempted_at", "attempted_at"),
    Index("ix_attempts_event_endpoint", "event_id", "endpoint_id"),
)

dashboard_tokens = Table(
    "dashboard_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # "link" (one use) or "session"
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)
