"""A Prometora webhook receiver: verified, idempotent, quick to answer.

Run it::

    pip install prometora-webhooks uvicorn
    export PROMETORA_WEBHOOK_SECRET=whsec_...      # the endpoint's signing secret
    uvicorn examples.fastapi_receiver:app --port 3000

then point an endpoint at ``https://<your host>/webhooks/prometora`` (for local development,
``prometora-webhooks listen --store ID --forward-to http://localhost:3000/webhooks/prometora``).

What it shows:

- Verification on the raw body by the ``verified_event`` dependency: a forged, tampered, stale
  or malformed request gets ``400`` and never reaches the handler.
- Idempotency: the ``webhook-id`` (the event's ``id``) is recorded in the same transaction as
  the work it causes, under a primary key. A retry, a resend or a recovery of an event already
  processed changes nothing and is still answered ``200``, so the sender stops retrying.
- Unknown event types are acknowledged (``200``), so a new type in the catalog never causes a
  retry storm; an error while processing rolls back and answers ``500``, so a retry can succeed.
"""

# No `from __future__ import annotations`: FastAPI must see the `Event` alias of `create_app`.
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from prometora_webhooks.receiver.fastapi import verified_event

SCHEMA = """
CREATE TABLE IF NOT EXISTS processed_webhooks (
    webhook_id  TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    total    INTEGER NOT NULL,          -- minor units (cents)
    currency TEXT NOT NULL,
    email    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sellers (
    seller_id TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    email     TEXT NOT NULL
);
"""


@contextlib.contextmanager
def transaction(db_path: str) -> Iterator[sqlite3.Connection]:
    """One SQLite transaction: committed on success, rolled back on any error."""
    conn = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def apply(conn: sqlite3.Connection, event: dict[str, Any]) -> None:
    """The work an event causes (here: upserts). It runs at most once per event id."""
    data = event["data"]
    if event["type"] == "order.created":
        conn.execute(
            "INSERT INTO orders (order_id, total, currency, email) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (order_id) DO NOTHING",
            (data["id"], data["total"], data["currency"], data["customer"]["email"]),
        )
    elif event["type"] == "seller.registered":
        conn.execute(
            "INSERT INTO sellers (seller_id, name, email) VALUES (?, ?, ?)"
            " ON CONFLICT (seller_id) DO NOTHING",
            (data["id"], data["name"], data["email"]),
        )
    # Any other type: acknowledged and ignored.


def create_app(
    secret: str | Callable[[], str] | None = None, db_path: str | None = None
) -> FastAPI:
    """The receiver; by default it reads ``PROMETORA_WEBHOOK_SECRET`` and ``WEBHOOK_DB``."""
    path = db_path or os.environ.get("WEBHOOK_DB", "webhooks-received.db")

    def env_secret() -> str:
        return os.environ.get("PROMETORA_WEBHOOK_SECRET", "")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        conn = sqlite3.connect(path)
        with contextlib.closing(conn):
            conn.executescript(SCHEMA)
        yield

    app = FastAPI(title="Prometora webhook receiver", lifespan=lifespan)
    Event = Annotated[dict[str, Any], Depends(verified_event(secret or env_secret))]

    @app.post("/webhooks/prometora")
    def receive(event: Event) -> dict[str, str]:
        # A plain `def`: FastAPI runs it in a thread, so blocking SQLite is fine here.
        with transaction(path) as conn:
            inserted = conn.execute(
                "INSERT INTO processed_webhooks (webhook_id, event_type, received_at)"
                " VALUES (?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING",
                (event["id"], event["type"], datetime.now(UTC).isoformat()),
            ).rowcount
            if inserted:
                apply(conn, event)
        return {"status": "processed" if inserted else "duplicate"}

    return app


app = create_app()
