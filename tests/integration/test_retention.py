"""Retention: the worker purges attempts and events older than LOG_RETENTION_DAYS."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.receiver import Receiver, wait_until
from tests.support.service import Service


def test_old_attempts_and_events_are_purged(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    # 0.0001 days = 8.6 s of retention, checked every half second
    svc = make_service(log_retention_days="0.0001", purge_interval="0.5")
    svc.start()
    store_id, key = svc.create_store()
    ep = svc.create_endpoint(key, receiver.url("/hook"))
    old = svc.publish(store_id).json()["id"]
    svc.wait_attempts(key, ep["id"], 1)
    resend = f"/v1/endpoints/{ep['id']}/events/{old}/resend"

    def purged() -> bool:
        return svc.attempts(key, ep["id"]) == []

    wait_until(purged, 30, "the attempt to be purged")
    # the event went with it: it can no longer be resent
    r = svc.request("POST", resend, key)
    assert r.status_code == 404, r.text
    # fresh activity is kept
    new = svc.publish(store_id).json()["id"]
    (attempt,) = svc.wait_attempts(key, ep["id"], 1)
    assert attempt["event_id"] == new
    assert (
        svc.request("POST", f"/v1/endpoints/{ep['id']}/events/{new}/resend", key).status_code == 202
    )
