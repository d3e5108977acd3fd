"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

import asyncio
import os
import subprocess

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from prometora_webhooks.storage.database import async_url
from prometora_webhooks.storage.migrate import upgrade
from prometora_webhooks.storage.tables import metadata
from tests.support.service import CLI


def test_migrations_match_the_declared_schema_and_run_concurrently(db_url: str) -> None:
    # several processes may run `migrate` at once (advisory lock on PostgreSQL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETORA_WEBHOOKS_")}
    env["PROMETORA_WEBHOOKS_DATABASE_URL"] = db_url
    procs = [
        subprocess.Popen(
            [*CLI, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(3)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()[-2000:]
    upgrade(db_url)  # and once more: nothing to do

    async def diff() -> list[object]:
        engine = create_async_engine(async_url(db_url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c), metadata)
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
