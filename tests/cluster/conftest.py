"""Cluster tests need PostgreSQL (the suite's PostgreSQL pass) and Redis; in CI a missing Redis fails them."""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.fixtures.ci import in_ci
from tests.fixtures.daemon import DaemonPool
from tests.fixtures.databases import pg_base_url

REDIS_URL = os.environ.get("CRMTEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip (or, in CI, fail) the cluster tests where their servers are missing."""
    here = os.path.dirname(__file__)
    reason = None
    if pg_base_url() is None:
        reason = "a cluster shares PostgreSQL: these run in the suite's PostgreSQL pass"
    elif not _redis_up() and not in_ci():
        reason = "Redis is not running on 127.0.0.1:6379"
    if reason is None:
        return
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
async def stream_name() -> AsyncIterator[str]:
    """A Redis stream of this test's own, deleted afterwards."""
    name = f"crmtel:test:{uuid.uuid4().hex}"
    yield name
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.delete(name)
    finally:
        await redis.aclose()


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[DaemonPool]:
    """Starts crmtel processes; whatever still runs (or is frozen) at the end of the test is killed."""
    daemons = DaemonPool(tmp_path)
    yield daemons
    for daemon in daemons.started:
        if daemon.alive():
            os.kill(daemon.pid, signal.SIGCONT)
    daemons.close()
