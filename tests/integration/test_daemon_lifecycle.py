"""``crmtel run`` starting and stopping as an operator sees it: one-line errors, clean SIGTERM with clients attached."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.csrf import page_like_session
from tests.fixtures.daemon import DaemonPool, clean_log, crmtel_cli, daemon_config, free_port
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_ami_pipeline import serving

# Races real processes (tests/fixtures/races.py).
pytestmark = RACES_PROCESSES


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port: int = sock.getsockname()[1]
        yield port


@pytest.mark.parametrize("which", ["web", "agi"])
async def test_a_busy_port_is_a_one_line_error_with_exit_code_1(
    database_url: str, tmp_path: Path, busy_port: int, which: str
) -> None:
    """Web or FastAGI port taken by another program: `crmtel run` says so in one line and exits 1, no traceback."""
    config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, free_port())
    text = config.read_text(encoding="utf-8")
    taken = ports.web if which == "web" else ports.agi
    config.write_text(text.replace(f"port = {taken}\n", f"port = {busy_port}\n"), encoding="utf-8")
    result = await crmtel_cli("--config", str(config), "run", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    key = "web.port" if which == "web" else "routing.agi_port"
    # The same line `crmtel config check` prints for it.
    assert f"key {key}: cannot listen on 127.0.0.1:{busy_port}: it is in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:1/crmtel",
        "sqlite+aiosqlite:////nonexistent-crmtel-dir/crmtel.db",
    ],
    ids=["postgres-down", "sqlite-no-directory"],
)
@pytest.mark.parametrize("command", ["run", "db upgrade"])
async def test_an_unreachable_database_is_a_one_line_error_with_exit_code_1(
    tmp_path: Path, url: str, command: str
) -> None:
    """`crmtel run` / `db upgrade` on a database that cannot be opened: one line, exit 1, no traceback."""
    config, _ports = daemon_config(tmp_path / "crmtel.toml", url, free_port())
    result = await crmtel_cli("--config", str(config), *command.split(), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot open the database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_sigterm_closes_websockets_and_idle_connections_and_exits_0(
    pool: DaemonPool, db: Database, database_url: str, tmp_path: Path
) -> None:
    """SIGTERM with a manager's page connected: its websocket is closed as 'going away', exit 0 within 5 s."""
    await ManagerRepository(db).save(login="anna", name="Anna", extensions=("101",), password="pw-anna")
    async with serving([]) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")
        async with page_like_session(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            login = {"login": "anna", "password": "pw-anna"}
            async with http.post(ports.web_url + "/api/login", json=login) as response:
                assert response.status == 200
            async with http.ws_connect(ports.web_url + "/ws") as ws:
                hello = await ws.receive_json(timeout=5)
                assert hello["type"] == "hello"
                # An idle keep-alive HTTP connection stays open next to the websocket.
                async with http.get(ports.web_url + "/api/me") as response:
                    assert response.status == 200
                # Keep reading while the daemon stops, as a browser does (it answers the close frame).
                closing, code = await asyncio.gather(ws.receive(timeout=5), daemon.terminate(limit=5))
    assert code == 0, daemon.describe()
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    assert clean_log(daemon.stderr()) == [], daemon.describe()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
async def test_stop_signal_while_the_pbx_is_unreachable_exits_0(
    pool: DaemonPool, database_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    """A daemon retrying a PBX that refuses connections still stops at once on SIGTERM or Ctrl-C."""
    config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, free_port())
    daemon = pool.spawn("--config", str(config), "run")
    await daemon.wait_http(ports.web_url + "/")
    await wait_for(lambda: daemon.stderr().count("ConnectionRefusedError") >= 2)
    code = await daemon.terminate(limit=5, sig=sig)
    assert code == 0, daemon.describe()
    assert clean_log(daemon.stderr()) == [], daemon.describe()


async def test_sigterm_with_an_agi_request_half_sent_exits_0_without_traceback(
    pool: DaemonPool, database_url: str, tmp_path: Path
) -> None:
    """Asterisk mid-way through an AGI environment when SIGTERM comes: exit 0, connection closed, clean log."""
    async with serving([]) as server:
        config, ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        daemon = pool.spawn("--config", str(config), "run")
        await daemon.wait_http(ports.web_url + "/")
        reader, writer = await asyncio.open_connection("127.0.0.1", ports.agi)
        writer.write(b"agi_network: yes\nagi_network_script: route\n")
        await writer.drain()
        await asyncio.sleep(0.1)  # the daemon is now waiting for the rest of the environment
        code = await daemon.terminate(limit=5)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert code == 0, daemon.describe()
    assert clean_log(daemon.stderr()) == [], daemon.describe()
