"""The running daemon (``crmtel run`` as a process) under hostile AMI input (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crmtel.ami.fakeserver import Garbage, load_ami
from crmtel.store.calls import CallRepository
from crmtel.store.db import Database
from tests.fixtures.daemon import DaemonPool, daemon_config, stored_state
from tests.fixtures.fake_ami import wait_until
from tests.integration.test_ami_pipeline import serving


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[DaemonPool]:
    """Starts crmtel processes; whatever still runs at the end of the test is killed."""
    daemons = DaemonPool(tmp_path)
    yield daemons
    daemons.close()


async def test_a_malformed_ami_stream_logs_a_handful_of_lines_not_one_per_bad_line(
    pool: DaemonPool, db: Database, database_url: str, traces_dir: Path, tmp_path: Path
) -> None:
    """20,000 header-less lines and 2,000 undecodable messages log tens of lines; the real call still lands."""
    trace = load_ami(traces_dir / "direct-answered.ami")
    junk = [
        Garbage(0.0, b"Event: Junk\r\n" + b"no colon on this line\r\n" * 20_000 + b"\r\n"),
        *(Garbage(0.0, b"Event: Bad\r\nCallerIDName: \xff\xfe\r\n\r\n") for _ in range(2000)),
    ]
    calls = CallRepository(db)
    async with serving([*trace[:3], *junk, *trace[3:]], speed=50.0) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")

        async def ended() -> bool:
            return len((await stored_state(calls)).ended) == 1

        await wait_until(ended, limit=30)
        await daemon.terminate(limit=5)
    log = daemon.stderr().splitlines()
    headerless = [line for line in log if "without a header name" in line]
    undecodable = [line for line in log if "not valid UTF-8" in line]
    assert 1 <= len(headerless) <= 10, daemon.describe()
    assert 1 <= len(undecodable) <= 10, daemon.describe()
    assert "further ones suppressed" in headerless[-1]
    assert len(log) < 100, daemon.describe()
