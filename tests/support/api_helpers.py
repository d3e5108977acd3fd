"""Helpers for API-level integration tests: shared (module-scoped) services and error checks.

Starting a service costs seconds; tests that only talk to the HTTP API and create their own
stores can share one per module. ``module_service(**env)`` returns such a fixture, run on
SQLite and on PostgreSQL like the per-test ``service`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.support.pgserver import PgServer
from tests.support.receiver import Receiver
from tests.support.service import Service, base_env

DATABASES = ["sqlite", "postgresql"]
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def fresh_db_url(
    kind: str, request: pytest.FixtureRequest, workdir: Path, *, migrated: bool = True
) -> tuple[str, Callable[[], None]]:
    """A new database of ``kind`` and the function that drops it."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'webhooks.db'}", lambda: None
    pg: PgServer = request.getfixturevalue("pg_server")
    name = pg.create_database(template=pg.template if migrated else None)  # type: ignore[attr-defined]
    return pg.url(name), lambda: pg.drop_database(name)


def module_service(**env: str) -> Any:
    """A module-scoped fixture: one running ``serve`` per database, with env overrides."""

    @pytest.fixture(scope="module", params=DATABASES)
    def fixture(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ca_path: str
    ) -> Iterator[Service]:
        workdir = tmp_path_factory.mktemp(f"svc-{request.param}")
        url, drop = fresh_db_url(request.param, request, workdir)
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        e = base_env(url, key, ca_path)
        e.update({f"PROMETORA_WEBHOOKS_{k.upper()}": v for k, v in env.items()})
        svc = Service(workdir, e)
        try:
            svc.start()
            yield svc
        finally:
            svc.stop_all()
            drop()
            shutil.rmtree(workdir, ignore_errors=True)

    return fixture


def module_receiver() -> Any:
    """A module-scoped fixture: one HTTPS receiver; tests keep apart by their own paths."""

    @pytest.fixture(scope="module")
    def fixture(ca: trustme.CA, ca_path: str) -> Iterator[Receiver]:
        r = Receiver(ca, ca_path)
        r.start()
        yield r
        r.stop()

    return fixture


def unique_path(prefix: str = "hook") -> str:
    return f"/{prefix}-{secrets.token_hex(6)}"


def assert_error(r: httpx.Response, status: int, code: str, case: str = "") -> dict[str, Any]:
    """The contract's error envelope, exactly: ``{"error": {"code", "message"}}``."""
    where = f"[{case}] " if case else ""
    shown = f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:500]!r}"
    assert r.status_code != 500, f"{where}server error on bad input: {shown}"
    assert r.status_code == status, f"{where}expected {status}: {shown}"
    assert r.headers.get("content-type", "").startswith("application/json"), f"{where}{shown}"
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"{where}error body is not JSON: {shown}") from None
    assert isinstance(body, dict), f"{where}{shown}"
    assert set(body) == {"error"}, f"{where}envelope keys: {shown}"
    err = body["error"]
    assert isinstance(err, dict), f"{where}{shown}"
    assert set(err) == {"code", "message"}, f"{where}error keys: {shown}"
    assert err["code"] == code, f"{where}expected code {code!r}: {shown}"
    assert isinstance(err["message"], str), f"{where}{shown}"
    assert err["message"].strip(), f"{where}empty message: {shown}"
    return err
