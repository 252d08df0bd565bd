"""Fixtures shared by the whole suite: a fresh, migrated database per test (SQLite or PostgreSQL)."""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crmtel.store.db import Database
from tests.fixtures.daemon import DaemonPool
from tests.fixtures.databases import PostgresRun, SqliteRun, pg_base_url
from tests.fixtures.traces import TRACES_DIR

# CDR tables in MariaDB and PostgreSQL (mysql_cdr, pg_cdr fixtures).
pytest_plugins = ("tests.fixtures.cdr_databases",)


@pytest.fixture(scope="session")
def _database_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresRun | SqliteRun]:
    base = pg_base_url()
    if base is not None:
        pg = PostgresRun(base)
        pg.create()
        yield pg
        pg.drop()
    else:
        lite = SqliteRun(tmp_path_factory.mktemp("sqlite-template"))
        lite.create()
        yield lite


@pytest.fixture
def database_url(_database_run: PostgresRun | SqliteRun, tmp_path: Path) -> str:
    """URL of an empty, migrated database for this test (PostgreSQL when CRMTEL_TEST_DATABASE_URL is set)."""
    if isinstance(_database_run, PostgresRun):
        return _database_run.fresh()
    return _database_run.fresh(tmp_path)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on the fresh test database, disposed after the test."""
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """The recorded real AMI traces kept in the repository."""
    return TRACES_DIR


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[DaemonPool]:
    """Starts crmtel processes; whatever still runs at the end of the test is killed."""
    daemons = DaemonPool(tmp_path)
    yield daemons
    daemons.close()


@pytest.fixture(autouse=True)
def _no_leaked_connection() -> Iterator[None]:
    """A pooled connection a test leaves checked out is reported by the garbage collector whenever it next runs —
    inside some later test, as an unraisable warning there. Collect after each test so a leak fails the test that
    made it (CRMTEL_TEST_LEAKS=1; the collection costs time, so it is off by default)."""
    yield
    if os.environ.get("CRMTEL_TEST_LEAKS") != "1":
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = [str(w.message) for w in caught if "non-checked-in connection" in str(w.message)]
    assert not leaks, f"this test left {len(leaks)} pooled connection(s) checked out: {leaks[0]}"
