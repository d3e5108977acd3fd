from __future__ import annotations

import json

from standardwebhooks.webhooks import Webhook

from tests.support.receiver import Receiver
from tests.support.service import ORDER, Service


def test_order_created_is_delivered_signed(service: Service, receiver: Receiver) -> None:
    store_id, key = service.create_store()
    ep = service.create_endpoint(key, receiver.url("/hook"))
    r = service.publish(store_id)
    assert r.status_code == 202, r.text
    event = r.json()
    (got,) = receiver.wait_for(1, "/hook")
    assert json.loads(got.body) == {
        "id": event["id"],
        "type": "order.created",
        "created": event["created"],
        "data": ORDER,
    }
    verified = Webhook(ep["secret"]).verify(got.body, got.headers)
    assert verified["id"] == event["id"]
    attempts = service.wait_attempts(key, ep["id"], 1)
    assert attempts[0]["status"] == "succeeded"
    assert attempts[0]["http_status"] == 200
