"""Chat formats delivered for real, recovery of missed events, and `listen`."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
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


class Lines:
    """A process's output read line by line in a thread, so that a test can wait for a line
    with a deadline instead of blocking on it (or sleeping)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout}s: {self.seen}")
            if line is None:
                raise AssertionError(f"output ended without {pattern!r}: {self.seen}")
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found


def listen(service: Service, *args: str) -> subprocess.Popen[str]:
    env = dict(service.env, SSL_CERT_FILE=service.env["PROMETORA_WEBHOOKS_CA_BUNDLE"])
    env.pop("PYTHONUNBUFFERED", None)  # a pipe: listen must flush its lines itself
    return subprocess.Popen(
        [*CLI, "listen", "--api-url", service.base_url, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_listen_forwards_live_events_within_a_second(service: Service, receiver: Receiver) -> None:
    store_id, key = service.create_store()
    forward_to = receiver.url("/local")
    proc = listen(service, "--store", store_id, "--forward-to", forward_to, "--token", key)
    try:
        out = Lines(proc)
        secret = out.wait_for(r"signing secret is (whsec_\S+)").group(1)
        ready = out.wait_for(r"^Ready!").string
        assert ready == f"Ready! Forwarding events for {store_id} to {forward_to}"
        # "Ready!" is printed once the stream is connected: nothing published after is missed.
        for i, data in enumerate((ORDER, {**ORDER, "id": "ord_second"})):
            r = service.publish(store_id, data=data)
            answered = time.monotonic()
            assert r.status_code == 202, r.text
            ev = r.json()
            got = receiver.wait_for(i + 1, "/local", timeout=10)[i]
            assert got.headers["webhook-id"] == ev["id"]
            assert got.at - answered < 1.0, "the issue: forwarded within a second"
            assert json.loads(got.body) == ev
            assert Webhook(secret).verify(got.body, got.headers)["id"] == ev["id"]
            out.wait_for(rf"--> order\.created {ev['id']} +\[200\]")
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, "Ctrl-C/SIGTERM is a clean stop"


def test_listen_refused_stops_with_one_clear_line(service: Service, receiver: Receiver) -> None:
    """A wrong token or an unknown store is not retried forever: one line, non-zero exit."""
    store_id, _ = service.create_store()
    cases = [
        (("--store", store_id, "--token", "sk_wrong"), "invalid token"),
        (("--store", "str_doesnotexist", "--token", service.admin_token), "str_doesnotexist"),
    ]
    for args, expect in cases:
        proc = listen(service, *args, "--forward-to", receiver.url("/never"))
        try:
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode not in (0, None), (stdout, stderr)
        assert "Traceback" not in stderr + stdout
        (line,) = stderr.strip().splitlines()
        assert expect in line, line
        assert "Ready!" not in stdout
    assert receiver.received("/never") == []

    # A key rotated while listening ends the stream, and listen with it.
    store_id, key = service.create_store()
    proc = listen(
        service, "--store", store_id, "--forward-to", receiver.url("/never"), "--token", key
    )
    try:
        Lines(proc).wait_for(r"^Ready!")
        service.admin("POST", f"/v1/stores/{store_id}/api-key/rotate").raise_for_status()
        assert proc.wait(30) not in (0, None)
    finally:
        proc.kill()
    assert proc.stderr is not None
    (line,) = proc.stderr.read().strip().splitlines()
    assert "invalid token" in line, line
