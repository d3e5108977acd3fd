"""The `prometora-webhooks` command as an operator uses it, beside a running `serve`."""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
import sys
from collections.abc import Iterator
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


def store_from(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The store id and API key printed by `stores create`."""
    ids = re.findall(r"\bstr_[A-Za-z0-9]+\b", proc.stdout)
    keys = re.findall(r"\bsk_[A-Za-z0-9_-]+", proc.stdout)
    assert len(ids) == 1, proc.stdout
    assert len(keys) == 1, proc.stdout
    return ids[0], keys[0]


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
