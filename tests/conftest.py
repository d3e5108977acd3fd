"""Shared fixtures: databases (SQLite and PostgreSQL), the HTTPS receiver, the service."""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.pgserver import PgServer, start_server
from tests.support.receiver import Receiver
from tests.support.service import Service, base_env

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = start_server(tmp_path_factory.mktemp("pg"))
    template = server.create_database()
    from prometora_webhooks.storage.migrate import upgrade

    upgrade(server.url(template))
    server.template = template  # type: ignore[attr-defined]
    yield server
    if server.datadir is not None:
        server.stop("immediate")
        shutil.rmtree(server.datadir.parent, ignore_errors=True)


@pytest.fixture(params=DATABASES)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty (migrated) database of each kind for each test."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'webhooks.db'}"
        return
    pg: PgServer = request.getfixturevalue("pg_server")
    name = pg.create_database(template=pg.template)  # type: ignore[attr-defined]
    yield pg.url(name)
    pg.drop_database(name)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_path(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def receiver(ca: trustme.CA, ca_path: str) -> Iterator[Receiver]:
    r = Receiver(ca, ca_path)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def secret_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def make_service(
    db_url: str, secret_key: str, ca_path: str, tmp_path: Path
) -> Iterator[Callable[..., Service]]:
    """Build a Service (not started) with extra environment overrides."""
    made: list[Service] = []

    def make(**env: str) -> Service:
        e = base_env(db_url, secret_key, ca_path)
        e.update({f"PROMETORA_WEBHOOKS_{k.upper()}": v for k, v in env.items()})
        workdir = tmp_path / f"svc{len(made)}"
        workdir.mkdir()
        svc = Service(workdir, e)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.stop_all()


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    """`prometora-webhooks serve` running with test-friendly settings (short retries)."""
    svc = make_service()
    svc.start()
    return svc
