"""Nodes that start together migrate one empty PostgreSQL database once, without tripping over each other."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from tests.fixtures.databases import _dsn, pg_base_url
from tests.fixtures.races import RACES_PROCESSES

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


async def test_three_nodes_upgrading_an_empty_database_at_once_all_succeed() -> None:
    """Three `crmtel db upgrade` processes at once on a new database: all exit 0, the schema is at head once."""
    base = pg_base_url()
    assert base is not None
    name = f"crmtel_test_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_dsn(base))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRMTEL_")} | {
            "CRMTEL_DATABASE_URL": url
        }
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "crmtel.cli",
                "db",
                "upgrade",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        async with asyncio.timeout(120):
            outputs = [(await p.communicate())[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        conn = await asyncpg.connect(_dsn(url))
        try:
            versions = await conn.fetch("SELECT version_num FROM alembic_version")
        finally:
            await conn.close()
        assert len(versions) == 1
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
