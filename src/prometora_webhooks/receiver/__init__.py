"""Receive Prometora webhooks: verify each delivery, then process it once.

Every delivery is a ``POST`` whose body is one event::

    {"id": "evt_…", "type": "order.created", "created": "2026-01-04T12:00:00Z", "data": {…}}

signed as `Standard Webhooks <https://www.standardwebhooks.com/>`_ describe, with the
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers. Verify it before you
trust any of it::

    from prometora_webhooks.receiver import WebhookVerificationError, verify

    try:
        event = verify(raw_body, request_headers, secret="whsec_…")
    except WebhookVerificationError as exc:
        return 400, exc.reason        # forged, tampered, replayed or malformed
    handle(event)                     # event["type"], event["data"], ...

:func:`verify` takes the raw body bytes *exactly as received* (parse JSON only afterwards: a
re-serialised body no longer matches its signature), the headers in any letter case, and the
endpoint's ``whsec_`` secret. It checks that the three headers are present once each, that the
timestamp is within ``tolerance`` seconds (300 by default) of now in either direction, that one
of the space-separated ``v1`` signatures matches (during a secret rotation each delivery carries
one per live secret, so the old or the new secret both work), and that the body is a JSON event
whose ``id`` is the ``webhook-id``. Anything else raises :class:`WebhookVerificationError`, with
a :class:`Reason`.

Frameworks: :mod:`prometora_webhooks.receiver.fastapi` (a dependency for FastAPI and a helper
for Starlette) and :mod:`prometora_webhooks.receiver.flask` (a decorator; Flask is imported only
there).

Idempotency: process each event once
------------------------------------
Delivery is at least once. A retry after a timeout, a manual resend, a recovery or a crash of
the sender can bring the same event again, always with the same ``webhook-id`` (which is also
the event's ``id``), and deliveries may arrive out of order. Deduplicate on it, in the same
transaction as the work the event causes, with a unique key doing the deciding::

    CREATE TABLE processed_webhooks (
        webhook_id  TEXT PRIMARY KEY,
        received_at TIMESTAMP NOT NULL
    );

    event = verify(body, headers, secret)
    with db.transaction():
        inserted = db.execute(
            "INSERT INTO processed_webhooks (webhook_id, received_at) VALUES (?, ?)"
            " ON CONFLICT (webhook_id) DO NOTHING",
            (event["id"], now()),
        ).rowcount
        if inserted:                      # first time: do the work in this transaction
            apply(event)
    return 200                            # a duplicate is answered 2xx too, or it is retried

Rules that go with it:

- Verify first, dedupe second: never record an id from an unverified request.
- Answer 2xx quickly (within 10 s). Slow work goes to a queue *after* the row is committed; the
  queue's consumer is then the part that must be idempotent.
- Answer 2xx to a duplicate. A non-2xx answer makes the sender retry the same event.
- If the work fails, roll the row back with it and answer 5xx, so a retry can succeed.
- Keep the ids at least as long as deliveries can repeat: retries span minutes, but a manual
  resend or a recovery can come days later (7 days of logs by default), so keep them ~30 days.
- Order is not guaranteed: use ``created`` (or your own object's version) to ignore an event
  older than what you already have.

``examples/fastapi_receiver.py`` is a complete receiver built this way.
"""

from __future__ import annotations

from ._verify import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Reason,
    WebhookVerificationError,
    verify,
    verify_pairs,
)

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Reason",
    "WebhookVerificationError",
    "verify",
    "verify_pairs",
]
