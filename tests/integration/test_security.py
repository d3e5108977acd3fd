"""Secrets hygiene, hostile bytes, key rotation, rate limiting, and a fuzzed API."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.receiver import Receiver, wait_until
from tests.support.service import ORDER, Service


def test_no_secret_reaches_logs_metrics_errors_or_the_delivery_log(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = make_service()
    svc.start()
    store_id, key1 = svc.create_store()
    header_value = "Bearer hdr-credential-5f2c9a7e"
    # A receiver that echoes credentials back must not get them into our log.
    receiver.script("/echo", statuses=[500], body=header_value.encode() + b" echoed")
    ep = svc.create_endpoint(
        key1, receiver.url("/echo"), headers={"Authorization": header_value}, description="x"
    )
    ok = svc.create_endpoint(key1, receiver.url("/ok"))
    rotated = svc.request("POST", f"/v1/endpoints/{ep['id']}/secret/rotate", key1).json()["secret"]
    key2 = svc.admin("POST", f"/v1/stores/{store_id}/api-key/rotate").json()["api_key"]
    assert svc.publish(store_id).status_code == 202
    assert (
        svc.request(
            "POST", f"/v1/endpoints/{ok['id']}/test", key2, json={"type": "seller.registered"}
        ).status_code
        == 202
    )
    receiver.wait_for(3, "/echo")  # original + 2 retries
    receiver.wait_for(2, "/ok")
    assert receiver.received("/echo")[0].headers["Authorization"] == header_value
    # error bodies that might reflect what was sent
    errors = [
        svc.request("GET", "/v1/endpoints", key1).text,  # revoked key
        svc.request(
            "POST",
            "/v1/endpoints",
            key2,
            json={
                "url": "ftp://x",
                "events": ["order.created"],
                "headers": {"Authorization": header_value},
            },
        ).text,
        svc.admin(
            "POST",
            f"/v1/stores/{store_id}/events",
            content=b'{"type": "order.created", "data": ' + header_value.encode(),
        ).text,
    ]
    attempts = json.dumps(svc.attempts(key2, ep["id"]) + svc.attempts(key2, ok["id"]))
    listed = json.dumps(svc.request("GET", "/v1/endpoints", key2).json())
    metrics = svc.http.get(svc.base_url + "/metrics").text
    svc.stop_all()
    logs = svc.logs()
    secrets = {
        "admin token": svc.admin_token,
        "api key (revoked)": key1,
        "api key": key2,
        "signing secret (old)": ep["secret"],
        "signing secret (new)": rotated,
        "SECRET_KEY": svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"],
        "custom header value": header_value,
        "custom header token": "hdr-credential-5f2c9a7e",
    }
    # the raw key bytes of the signing secrets, in any encoding we might print
    for name in ("signing secret (old)", "signing secret (new)"):
        secrets[name + " key"] = secrets[name].removeprefix("whsec_")
    places = {
        "logs": logs,
        "metrics": metrics,
        "errors": "\n".join(errors),
        "delivery log": attempts,
        "endpoint list": listed,
    }
    leaks = [f"{s} in {p}" for p, text in places.items() for s, v in secrets.items() if v in text]
    assert not leaks, leaks
    assert len(logs) > 500  # the grep looked at real logs, including failed attempts
    assert '"attempt failed"' in logs
    assert "[redacted] echoed" in attempts


def test_nul_bytes_and_invalid_utf8_are_stored_and_shown(
    service: Service, receiver: Receiver
) -> None:
    store_id, key = service.create_store()
    receiver.script("/hook", statuses=[502], body=b"\x00\xff\xfe not utf-8 \x00 end")
    ep = service.create_endpoint(key, receiver.url("/hook"))
    order = json.loads(json.dumps(ORDER))
    order["customer"]["name"] = "Nul\u0000Byte \u2603 \U0001f600"
    r = service.publish(store_id, data=order)
    assert r.status_code == 202, r.text
    (got,) = receiver.wait_for(1, "/hook")[:1]
    assert json.loads(got.body)["data"]["customer"]["name"] == "Nul\u0000Byte \u2603 \U0001f600"
    Webhook(ep["secret"]).verify(got.body, got.headers)
    (attempt,) = service.wait_attempts(key, ep["id"], 1)[-1:]
    assert attempt["http_status"] == 502
    assert attempt["response_body"] == "\x00\ufffd\ufffd not utf-8 \x00 end"
    # NUL in names and descriptions is refused cleanly (never a 500)
    bad = service.request(
        "POST",
        "/v1/endpoints",
        key,
        json={"url": receiver.url("/x"), "events": ["order.created"], "description": "a\u0000b"},
    )
    assert bad.status_code == 422, bad.text
    assert (
        service.admin(
            "POST", "/v1/stores", json={"name": "a\u0000b", "plan": "business"}
        ).status_code
        == 422
    )


def test_rate_limit_per_store_key(make_service: Callable[..., Service]) -> None:
    svc = make_service(rate_limit="1", rate_limit_burst="3")
    svc.start()
    _, key = svc.create_store()
    codes = [svc.request("GET", "/v1/endpoints", key).status_code for _ in range(6)]
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    r = svc.request("GET", "/v1/endpoints", key)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    # the platform's admin token is not limited
    assert all(svc.admin("GET", "/v1/event-types").status_code == 200 for _ in range(10))


def test_rotate_key_reencrypts_every_secret_without_losing_one(
    make_service: Callable[..., Service], receiver: Receiver, db_kind: str
) -> None:
    svc = make_service()
    old_key = svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"]
    if db_kind == "sqlite":  # the generated key file beside the database
        del svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"]
    svc.start()
    store_id, key = svc.create_store()
    ep = svc.create_endpoint(key, receiver.url("/hook"), headers={"X-Token": "tok-123456"})
    svc.stop_all()
    if db_kind == "sqlite":
        db = Path(svc.env["PROMETORA_WEBHOOKS_DATABASE_URL"].removeprefix("sqlite:///"))
        key_path = db.with_name(db.name + ".key")
        before = key_path.read_text().strip()
        out = svc.cli("rotate-key")
        new_key = out.stdout.strip()
        assert key_path.read_text().strip() == new_key != before
    else:
        new_key = base64.b64encode(b"k" * 32).decode()
        svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = f"{new_key},{old_key}"
        out = svc.cli("rotate-key")
        assert out.stdout.strip() == new_key
        svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = new_key  # the old key is gone now
    assert re.search(r"re-encrypted 2 secrets", out.stderr), out.stderr
    svc.start()
    assert svc.publish(store_id).status_code == 202
    (got,) = receiver.wait_for(1, "/hook")
    Webhook(ep["secret"]).verify(got.body, got.headers)
    assert got.headers["X-Token"] == "tok-123456"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("caller", ["admin", "store"])
def test_schemathesis_finds_no_server_errors(service: Service, tmp_path: Path, caller: str) -> None:
    """Fuzz every documented operation as the platform and as a store: no 500s, and every
    response matches the schema."""
    store_id, store_key = service.create_store()
    token = service.admin_token if caller == "admin" else store_key
    exe = shutil.which("schemathesis") or str(
        Path(__import__("sys").executable).with_name("schemathesis")
    )
    cmd = [
        exe,
        "run",
        f"{service.base_url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "25",
        "--header",
        f"Authorization: Bearer {token}",
        "--exclude-path-regex",
        "/metrics",
        "--no-color",
        "--seed",
        "1",
        "--request-timeout",
        "10",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out.stdout)
    assert generated, out.stdout[-3000:]
    assert int(generated.group(1)) == int(generated.group(2)) > 300
    assert store_id


def test_a_process_with_the_wrong_secret_key_holds_deliveries_without_losing_them(
    make_service: Callable[..., Service], receiver: Receiver
) -> None:
    svc = make_service(retry_delays="", worker_defer_seconds="1")
    right_key = svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"]
    svc.start()
    store_id, key = svc.create_store()
    svc.create_endpoint(key, receiver.url("/hook"))
    svc.stop_all()
    svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = base64.b64encode(b"w" * 32).decode()
    svc.start()
    ev = svc.publish(store_id).json()
    wait_until(lambda: "cannot be decrypted" in svc.logs(), 15, "the decrypt error in the log")
    assert receiver.received("/hook") == []
    svc.stop_all()
    svc.env["PROMETORA_WEBHOOKS_SECRET_KEY"] = right_key
    svc.start()
    # held back (re-examined every WORKER_DEFER_SECONDS), then sent once the key is right
    (got,) = receiver.wait_for(1, "/hook", timeout=30)
    assert got.headers["webhook-id"] == ev["id"]
