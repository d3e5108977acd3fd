"""Chat formats delivered for real, recovery of missed events, and `listen`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

from standardwebhooks.webhooks import Webhook

from tests.support.receiver import Receiver
from tests.support.service import CLI, ORDER, Service


def test_slack_and_discord_formats_are_delivered(service: Service, receiver: Receiver) -> None:
    store_id, key = service.create_store()
    slack = service.create_endpoint(key, receiver.url("/slack"), format="slack")
    discord = service.create_endpoint(key, receiver.url("/discord"), format="discord")
    assert slack["format"] == "slack"
    assert discord["format"] == "discord"
    ev = service.publish(store_id).json()
    (s,) = receiver.wait_for(1, "/slack")
    (d,) = receiver.wait_for(1, "/discord")
    sbody, dbody = json.loads(s.body), json.loads(d.body)
    assert sbody["text"] == "New order ord_xyz789 — $99.99 from John Doe, 1 item: Handmade Pottery"
    assert sbody["blocks"][0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": sbody["text"]},
    }
    assert dbody["embeds"][0]["title"] == "New order ord\\_xyz789"
    assert dbody["allowed_mentions"] == {"parse": []}
    # still signed, and logged like any delivery
    assert s.headers["webhook-id"] == ev["id"]
    Webhook(slack["secret"]).verify(s.body, s.headers)
    attempts = service.wait_attempts(key, discord["id"], 1)
    assert attempts[0]["status"] == "succeeded"
    # and the format can be changed later
    r = service.request("PATCH", f"/v1/endpoints/{slack['id']}", key, json={"format": "standard"})
    assert r.json()["format"] == "standard"
    bad = service.request("PATCH", f"/v1/endpoints/{slack['id']}", key, json={"format": "teams"})
    assert bad.status_code == 422


def test_recover_resends_exactly_the_missed_events(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = make_service(retry_delays="")
    svc.start()
    store_id, key = svc.create_store()
    receiver.script("/hook", statuses=[200, 500, 200])
    ep = svc.create_endpoint(key, receiver.url("/hook"))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    delivered = svc.publish(store_id).json()["id"]
    receiver.wait_for(1, "/hook")
    failed = svc.publish(store_id).json()["id"]
    svc.wait_attempts(key, ep["id"], 2)
    svc.request("PATCH", f"/v1/endpoints/{ep['id']}", key, json={"enabled": False})
    skipped = [svc.publish(store_id).json()["id"] for _ in range(2)]
    svc.publish(store_id, "seller.registered")  # not a type this endpoint takes
    svc.request("POST", f"/v1/endpoints/{ep['id']}/test", key, json={"type": "order.created"})
    receiver.wait_for(3, "/hook")  # the test send (manual sends go to disabled endpoints)
    svc.request("PATCH", f"/v1/endpoints/{ep['id']}", key, json={"enabled": True})
    r = svc.request("POST", f"/v1/endpoints/{ep['id']}/recover", key, json={"since": since})
    assert r.status_code == 202, r.text
    assert r.json()["queued"] == 3
    got = receiver.wait_for(6, "/hook")
    resent = [g.headers["webhook-id"] for g in got[3:]]
    assert sorted(resent) == sorted([failed, *skipped])
    assert delivered not in resent
    # a second recover finds nothing more to send
    again = svc.request("POST", f"/v1/endpoints/{ep['id']}/recover", key, json={"since": since})
    assert again.json()["queued"] == 0
    bad = svc.request("POST", f"/v1/endpoints/{ep['id']}/recover", key, json={"since": "yesterday"})
    assert bad.status_code == 422


def test_listen_forwards_live_events_within_a_second(service: Service, receiver: Receiver) -> None:
    store_id, _ = service.create_store()
    env = dict(service.env, SSL_CERT_FILE=service.env["PROMETORA_WEBHOOKS_CA_BUNDLE"])
    proc = subprocess.Popen(
        [
            *CLI,
            "listen",
            "--store",
            store_id,
            "--forward-to",
            receiver.url("/local"),
            "--api-url",
            service.base_url,
            "--token",
            service.admin_token,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "signing secret is whsec_" in first, first
        secret = first.strip().rsplit(" ", 1)[-1]
        proc.stdout.readline()  # "Forwarding ..."
        time.sleep(1.0)  # let the stream connect: events before it are not replayed
        t0 = time.monotonic()
        ev = service.publish(store_id).json()
        (got,) = receiver.wait_for(1, "/local", timeout=10)
        assert got.at - t0 < 1.0 + 0.5  # "within a second" (+ slack for a busy machine)
        assert json.loads(got.body)["data"] == ORDER
        assert Webhook(secret).verify(got.body, got.headers)["id"] == ev["id"]
    finally:
        proc.terminate()
        proc.wait(10)
