"""Abuse limits that need many objects: at most 100 endpoints per store."""

from __future__ import annotations

from tests.support.receiver import Receiver
from tests.support.service import Service


def test_a_store_has_at_most_100_endpoints(service: Service, receiver: Receiver) -> None:
    _, key = service.create_store()
    for i in range(100):
        service.create_endpoint(key, receiver.url(f"/e{i}"))
    r = service.request(
        "POST",
        "/v1/endpoints",
        key,
        json={"url": receiver.url("/one-more"), "events": ["order.created"]},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert "at most 100 endpoints" in r.json()["error"]["message"]
    # another store is not affected
    _, other = service.create_store(name="Other")
    service.create_endpoint(other, receiver.url("/other"))
