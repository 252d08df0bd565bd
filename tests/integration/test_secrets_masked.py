"""No secret — AMI secret, database password, tokens — ever reaches a log line or an error message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import structlog

from crmtel.config import LogSettings
from crmtel.configcheck.messages import Redactor
from crmtel.fakepbx.server import FakeAmiServer, load_ami
from crmtel.logging import configure
from tests.fixtures.daemon import DaemonPool, crmtel_cli, daemon_config, free_port
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.races import RACES_PROCESSES

AMI_SECRET = "ami-secret-c41e"
DB_PASSWORD = "db-password-77ab"


def test_log_lines_and_tracebacks_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    """structlog events, stdlib records and exception tracebacks: every configured secret becomes ***."""
    configure(LogSettings(level="debug"), redact=Redactor([AMI_SECRET, f"postgresql://u:{DB_PASSWORD}@h/d"]))
    try:
        structlog.get_logger("t").info("login", secret=AMI_SECRET)
        logging.getLogger("panoramisk.manager").debug("sending Action: Login\r\nSecret: %s", AMI_SECRET)
        try:
            raise RuntimeError(f"cannot connect to postgresql://u:{DB_PASSWORD}@h/d")
        except RuntimeError:
            logging.getLogger("x").exception("failed")
    finally:
        configure(LogSettings())
    err = capsys.readouterr().err
    assert AMI_SECRET not in err
    assert DB_PASSWORD not in err
    assert err.count("***") >= 3
    assert "Traceback" in err  # the traceback itself is kept, only the secret is gone


@RACES_PROCESSES  # races a real process (tests/fixtures/races.py)
@pytest.mark.slow
async def test_a_running_daemon_at_debug_level_never_logs_the_ami_secret(
    pool: DaemonPool, database_url: str, tmp_path: Path, traces_dir: Path
) -> None:
    """Plain-text AMI login refused, log level debug (libraries log the actions they send): secret never shown."""
    server = FakeAmiServer(load_ami(traces_dir / "direct-answered.ami"), secret="the-other-secret")
    await server.start()
    try:
        config, _ports = daemon_config(tmp_path / "crmtel.toml", database_url, server.port)
        text = config.read_text()
        text = text.replace('secret = "secret"', f'secret = "{AMI_SECRET}"').replace(
            'auth = "md5"', 'auth = "plain"'
        )
        config.write_text(
            text.replace('level = "info"', 'level = "debug"').replace("[ami]", "[ami]\nlogin_retry = 0.2")
        )
        daemon = pool.spawn("--config", str(config), "run")
        await wait_for(lambda: daemon.stderr().count("login refused for user") >= 2, limit=20)
        assert await daemon.terminate(limit=10) == 0, daemon.describe()
    finally:
        await server.close()
    log = daemon.stderr()
    assert AMI_SECRET not in log
    assert "login refused for user 'crmtel'" in log


@pytest.mark.slow
async def test_error_messages_never_show_the_database_password(tmp_path: Path) -> None:
    """`run` and `db upgrade` on an unreachable PostgreSQL: the one-line error has no password in it."""
    url = f"postgresql+asyncpg://crmtel:{DB_PASSWORD}@127.0.0.1:{free_port()}/crm"
    config, _ports = daemon_config(tmp_path / "crmtel.toml", url, free_port())
    for command in (["run"], ["db", "upgrade"], ["config", "check", "--connect"]):
        result = await crmtel_cli("--config", str(config), *command, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert DB_PASSWORD not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
