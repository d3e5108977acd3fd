"""The `prometora-webhooks` command as an operator uses it, beside a running `serve`."""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.api_helpers import DATABASES, fresh_db_url
from tests.support.receiver import Receiver
from tests.support.service import ORDER, Service, base_env, free_port

CONSOLE_SCRIPT = Path(sys.executable).parent / "prometora-webhooks"


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *names: str) -> str:
    """A failed command: non-zero, one clear line on stderr naming ``names``, no traceback."""
    shown = f"rc={proc.returncode}\nstdout={proc.stdout!r}\nstderr={proc.stderr!r}"
    assert proc.returncode != 0, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, shown
    for name in names:
        assert name in lines[0], shown
    return lines[0]


def printed_pair(
    proc: subprocess.CompletedProcess[str], id_pattern: str, secret_pattern: str
) -> tuple[str, str]:
    """The one id and the one secret a command printed."""
    ids = re.findall(id_pattern, proc.stdout)
    secrets = re.findall(secret_pattern, proc.stdout)
    assert len(ids) == 1, proc.stdout
    assert len(secrets) == 1, proc.stdout
    return ids[0], secrets[0]


def store_from(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The store id and API key printed by `stores create`."""
    return printed_pair(proc, r"\bstr_[A-Za-z0-9]+\b", r"\bsk_[A-Za-z0-9_-]+")


def publish(
    svc: Service, store_id: str, data: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return svc.cli(
        "publish", "--store", store_id, "--type", "order.created", "--data", data, check=check
    )


def test_cli_creates_store_publishes_and_links(
    service: Service, receiver: Receiver, tmp_path: Path
) -> None:
    """`stores create`, `publish` (JSON and @file) and `dashboard-link` against a live API."""
    svc = service
    store_id, key = store_from(
        svc.cli("stores", "create", "--name", "CLI Shop", "--plan", "business")
    )

    # The printed id and key work against the running API.
    store = svc.admin("GET", f"/v1/stores/{store_id}").json()
    assert (store["name"], store["plan"]) == ("CLI Shop", "business")
    ep = svc.create_endpoint(key, receiver.url("/cli"))

    first = json.loads(publish(svc, store_id, json.dumps(ORDER)).stdout)
    assert first["id"].startswith("evt_")
    assert (first["type"], first["data"]) == ("order.created", ORDER)

    from_file = {**ORDER, "id": "ord_from_file"}
    data_file = tmp_path / "order.json"
    data_file.write_text(json.dumps(from_file), encoding="utf-8")
    second = json.loads(publish(svc, store_id, f"@{data_file}").stdout)
    assert second["data"] == from_file

    got = {r.headers["webhook-id"]: r for r in receiver.wait_for(2, "/cli")}
    assert set(got) == {first["id"], second["id"]}
    for event in (first, second):
        body = got[event["id"]].body
        assert json.loads(body) == event
        Webhook(ep["secret"]).verify(body, got[event["id"]].headers)

    out = svc.cli("dashboard-link", "--store", store_id)
    (link,) = out.stdout.strip().splitlines()
    assert re.match(r"^https?://[^\s/]+/\S+$", link), link
    assert len(link) > 40, "the link carries a one-time token"

    # Mistakes are one clear line each, and publish nothing.
    bad_order = json.dumps({**ORDER, "items": []})
    assert_one_line_error(publish(svc, store_id, bad_order, check=False), "items")
    assert_one_line_error(publish(svc, store_id, "{", check=False), "--data")
    assert len(svc.attempts(key, ep["id"])) == 2
    assert len(receiver.received("/cli")) == 2


def test_generate_key_prints_32_random_bytes(tmp_path: Path) -> None:
    keys = []
    for _ in range(2):
        out = subprocess.run(
            [str(CONSOLE_SCRIPT), "generate-key"],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
            timeout=60,
        )
        (line,) = out.stdout.strip().splitlines()
        try:
            raw = base64.b64decode(line, validate=True)
        except binascii.Error:
            pytest.fail(f"not base64: {line!r}")
        assert len(raw) == 32
        keys.append(line)
    assert keys[0] != keys[1]
    assert list(tmp_path.iterdir()) == [], "generate-key touches no database"


@pytest.fixture(params=DATABASES)
def blank_db(
    request: pytest.FixtureRequest, tmp_path: Path, secret_key: str, ca_path: str
) -> Iterator[Service]:
    """A Service (not started) on a database with no schema at all."""
    url, drop = fresh_db_url(request.param, request, tmp_path, migrated=False)
    yield Service(tmp_path, base_env(url, secret_key, ca_path))
    drop()


def test_migrate_is_idempotent(blank_db: Service) -> None:
    for _ in range(2):
        out = blank_db.cli("migrate", check=False)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
    # The schema is complete: a store can be made on it.
    store_from(blank_db.cli("stores", "create", "--name", "After Migrate", "--plan", "business"))


# Every variable's parsing is unit-tested (tests/unit/test_config.py); these check that `serve`
# stops on each kind of failure: settings parsing, the secret key (read after migrating), and the
# database itself.
BAD_CONFIG = [
    pytest.param("DELIVERY_TIMEOUT", "abc", id="delivery-timeout-abc"),
    pytest.param("RETRY_DELAYS", "x", id="retry-delays-x"),
    pytest.param("DATABASE_URL", "mysql://x", id="database-url-mysql"),
    pytest.param("ALLOW_HTTP", "maybe", id="allow-http-maybe"),
    pytest.param("PUBLIC_URL", "not a url", id="public-url-not-url"),
    pytest.param("SECRET_KEY", base64.b64encode(b"k" * 16).decode(), id="secret-key-16-bytes"),
    pytest.param(
        "DATABASE_URL",
        "sqlite:////nonexistent/dir/webhooks.db",
        id="database-url-unopenable",
    ),
]


@pytest.mark.parametrize(("var", "value"), BAD_CONFIG)
def test_bad_config_fails_start_with_one_line(
    var: str, value: str, tmp_path: Path, secret_key: str, ca_path: str
) -> None:
    env = base_env(f"sqlite:///{tmp_path / 'webhooks.db'}", secret_key, ca_path)
    env[f"PROMETORA_WEBHOOKS_{var}"] = value
    proc = Service(tmp_path, env).cli("serve", "--port", str(free_port()), check=False)
    line = assert_one_line_error(proc, f"PROMETORA_WEBHOOKS_{var}")
    if var == "SECRET_KEY":
        assert value not in line, "the secret key is never echoed"


def test_postgresql_without_secret_key_fails_clearly(
    request: pytest.FixtureRequest, tmp_path: Path, ca_path: str
) -> None:
    url, drop = fresh_db_url("postgresql", request, tmp_path)
    try:
        env = base_env(url, "unused", ca_path)
        del env["PROMETORA_WEBHOOKS_SECRET_KEY"]
        proc = Service(tmp_path, env).cli("serve", "--port", str(free_port()), check=False)
        assert_one_line_error(proc, "PROMETORA_WEBHOOKS_SECRET_KEY", "PostgreSQL", "generate-key")
        assert not list(tmp_path.glob("*.key")), "no key file is made for PostgreSQL"
    finally:
        drop()


def endpoint_from(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The endpoint id and signing secret printed by `endpoints create`."""
    return printed_pair(proc, r"\bwe_[A-Za-z0-9]+\b", r"\bwhsec_[A-Za-z0-9+/=]+")


def listed(svc: Service, store_id: str) -> dict[str, list[str]]:
    """`endpoints list` as {id: [format, state, events, url]}."""
    out = svc.cli("endpoints", "list", "--store", store_id).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return {row[0]: row[1:] for row in rows}


def test_cli_manages_endpoints_and_a_slack_endpoint_gets_slack_messages(
    service: Service, receiver: Receiver
) -> None:
    """`endpoints create|list|update|delete` against a live service; the endpoint the CLI made
    with ``--format slack`` and a custom header receives a Slack message, signed and logged."""
    svc = service
    store_id, key = store_from(svc.cli("stores", "create", "--name", "CLI Endpoints"))
    ep_id, secret = endpoint_from(
        svc.cli(
            "endpoints",
            "create",
            "--store",
            store_id,
            "--url",
            receiver.url("/cli-slack"),
            "--event",
            "order.created",
            "--event",
            "seller.registered",
            "--format",
            "slack",
            "--description",
            "Ops channel",
            "--header",
            "Authorization: Bearer n8n-t0ken: with colon",
        )
    )
    ep = svc.endpoint(key, ep_id)
    assert ep["format"] == "slack"
    assert ep["events"] == ["order.created", "seller.registered"]
    assert ep["description"] == "Ops channel"
    assert ep["header_names"] == ["Authorization"]
    assert "secret" not in ep
    assert svc.request("GET", f"/v1/endpoints/{ep_id}/secret", key).json()["secret"] == secret
    assert listed(svc, store_id) == {
        ep_id: ["slack", "enabled", "order.created,seller.registered", receiver.url("/cli-slack")]
    }

    event = json.loads(publish(svc, store_id, json.dumps(ORDER)).stdout)
    (got,) = receiver.wait_for(1, "/cli-slack")
    message = json.loads(got.body)
    text = "New order ord_xyz789 — $99.99 from John Doe, 1 item: Handmade Pottery"
    assert message["text"] == text
    assert message["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    assert "data" not in message, "a Slack message, not the standard event body"
    assert got.headers["Authorization"] == "Bearer n8n-t0ken: with colon"
    assert got.headers["webhook-id"] == event["id"]
    Webhook(secret).verify(got.body, got.headers)
    assert svc.wait_attempts(key, ep_id, 1)[0]["status"] == "succeeded"

    # update: format, events, URL, disable / enable
    out = svc.cli(
        "endpoints", "update", ep_id, "--store", store_id, "--format", "discord", "--disable"
    )
    assert out.stdout.split("\t")[:3] == [ep_id, "discord", "disabled (manual)"]
    ep = svc.endpoint(key, ep_id)
    assert (ep["format"], ep["enabled"], ep["disabled_reason"]) == ("discord", False, "manual")
    svc.cli(
        "endpoints",
        "update",
        ep_id,
        "--store",
        store_id,
        "--url",
        receiver.url("/cli-moved"),
        "--event",
        "seller.registered",
        "--enable",
    )
    ep = svc.endpoint(key, ep_id)
    assert ep["url"] == receiver.url("/cli-moved")
    assert ep["events"] == ["seller.registered"]
    assert (ep["enabled"], ep["disabled_reason"], ep["format"]) == (True, None, "discord")
    assert ep["header_names"] == ["Authorization"], "headers are kept unless given"

    out = svc.cli("endpoints", "delete", ep_id, "--store", store_id)
    assert ep_id in out.stdout
    assert svc.request("GET", f"/v1/endpoints/{ep_id}", key).status_code == 404
    assert listed(svc, store_id) == {}


def test_cli_endpoint_mistakes_are_one_clear_line(make_service: Callable[..., Service]) -> None:
    """Bad URL, bad format, unknown store or endpoint, a store off Business, a malformed
    header: one line on stderr, non-zero, and nothing is created."""
    svc = make_service()  # the CLI works on the database; no server needed
    store_id, _ = store_from(svc.cli("stores", "create", "--name", "Mistakes"))
    free_id, _ = store_from(svc.cli("stores", "create", "--name", "Free", "--plan", "starter"))

    def create(store: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return svc.cli(
            "endpoints", "create", "--store", store, "--url", url, "--event", "order.created",
            *extra, check=False,
        )  # fmt: skip

    ok = "https://localhost:9/hook"
    assert_one_line_error(create(store_id, "http://localhost:9/hook"), "https://")
    assert_one_line_error(create(store_id, "not a url"), "url")
    assert_one_line_error(create(store_id, ok, "--format", "teams"), "teams", "slack", "discord")
    assert_one_line_error(create("str_doesnotexist", ok), "str_doesnotexist")
    assert_one_line_error(create(free_id, ok), "Business", "$199/month")
    assert_one_line_error(create(store_id, ok, "--header", "no-colon-here"), "--header")
    assert_one_line_error(create(store_id, ok, "--header", "Host: evil"), "Host")
    bad_type = svc.cli(
        "endpoints", "create", "--store", store_id, "--url", ok, "--event", "order.shipped",
        check=False,
    )  # fmt: skip
    assert_one_line_error(bad_type, "order.shipped")
    assert listed(svc, store_id) == {}
    assert_one_line_error(
        svc.cli("endpoints", "list", "--store", "str_nope", check=False), "str_nope"
    )

    ep_id, _ = endpoint_from(create(store_id, ok))
    for args in (
        ("--format", "teams"),
        ("--url", "http://localhost:9/x"),
        (),  # nothing to change
    ):
        proc = svc.cli("endpoints", "update", ep_id, "--store", store_id, *args, check=False)
        assert_one_line_error(proc)
    missing = svc.cli(
        "endpoints", "update", "we_doesnotexist", "--store", store_id, "--disable", check=False
    )
    assert_one_line_error(missing, "we_doesnotexist")
    other = svc.cli("endpoints", "delete", ep_id, "--store", free_id, check=False)
    assert_one_line_error(other, ep_id)  # another store's endpoint is not found
    assert_one_line_error(
        svc.cli("endpoints", "delete", "we_doesnotexist", "--store", store_id, check=False),
        "we_doesnotexist",
    )
    assert listed(svc, store_id) == {ep_id: ["standard", "enabled", "order.created", ok]}
