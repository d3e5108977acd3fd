"""The Alembic migrations build exactly the schema the code declares, on both databases, and
`migrate` may run from several processes at once on an empty database."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from prometora_webhooks.storage.database import async_url
from prometora_webhooks.storage.migrate import alembic_config, upgrade
from prometora_webhooks.storage.tables import metadata
from tests.support.api_helpers import fresh_db_url
from tests.support.dbpeek import query
from tests.support.service import CLI


async def _inspect(db_url: str) -> tuple[list[str], list[object]]:
    """(table names, differences between the database and the declared schema)."""
    engine = create_async_engine(async_url(db_url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: (
                    sorted(inspect(c).get_table_names()),
                    compare_metadata(MigrationContext.configure(c), metadata),
                )
            )
    finally:
        await engine.dispose()


def test_concurrent_migrate_on_an_empty_database_builds_the_declared_schema_once(
    db_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url, drop = fresh_db_url(db_kind, request, tmp_path, migrated=False)
    try:
        if db_kind == "sqlite":
            assert not (tmp_path / "webhooks.db").exists()
        else:
            assert asyncio.run(_inspect(url))[0] == [], "the database must start empty"
        # Three processes at once (advisory lock on PostgreSQL, a file lock on SQLite): without
        # the lock the losers would fail creating tables the winner just created.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETORA_WEBHOOKS_")}
        env["PROMETORA_WEBHOOKS_DATABASE_URL"] = url
        procs = [
            subprocess.Popen(
                [*CLI, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            for _ in range(3)
        ]
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, out.decode()[-2000:]
            assert "database is up to date" in out.decode()

        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert head is not None
        assert query(url, "SELECT version_num FROM alembic_version") == [(head,)]
        tables, diff = asyncio.run(_inspect(url))
        assert diff == []
        assert set(tables) == {*metadata.tables, "alembic_version"}

        upgrade(url)  # and once more: nothing to do
        assert query(url, "SELECT version_num FROM alembic_version") == [(head,)]
    finally:
        drop()
