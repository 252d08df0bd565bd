"""``crmtel config check``: one plain line per mistake — where it came from, what is wrong, what would be valid."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from crmtel.cli import main
from crmtel.fakepbx.server import FakeAmiServer, load_ami
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.daemon import crmtel_cli, free_ports

SECRET = "ami-secret-7f3a"


def _config(tmp_path: Path, name: str = "crmtel.toml", **sections: Mapping[str, object]) -> Path:
    """A config with free web and FastAGI ports, an AMI secret and a SQLite file, plus ``sections``' keys.

    A ``top`` section holds top-level keys. Values are written as JSON, which is valid TOML for these types.
    """
    web, agi = free_ports(2)
    tables: dict[str, dict[str, object]] = {
        "top": {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'crmtel.db'}"},
        "ami": {"secret": SECRET},
        "web": {"port": web},
        "routing": {"agi_port": agi},
    }
    for section, values in sections.items():
        tables.setdefault(section, {}).update(values)
    lines = [f"{k} = {json.dumps(v)}" for k, v in tables.pop("top").items()]
    for section, values in tables.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check(capsys: pytest.CaptureFixture[str], config: Path, *extra: str) -> tuple[int, list[str], str]:
    code = main(["config", "check", "--config", str(config), *extra])
    out, err = capsys.readouterr()
    return code, [line for line in err.splitlines() if line], out


@pytest.fixture(autouse=True)
def _no_crmtel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks see only what each test sets."""
    for name in [n for n in os.environ if n.startswith("CRMTEL_")]:
        monkeypatch.delenv(name)


def _plain(lines: list[str]) -> None:
    for line in lines:
        assert "pydantic" not in line.lower()
        assert "http" not in line
        assert "Traceback" not in line
        assert "Input should be" not in line


def test_a_good_config_is_ok_with_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing wrong: exit 0, "configuration OK", nothing on stderr."""
    code, lines, out = _check(capsys, _config(tmp_path))
    assert (code, lines) == (0, [])
    assert out.strip() == "configuration OK"


def test_unknown_key_names_file_key_and_the_likely_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo: the file and key, "no such key", the nearest known key and the section's keys; no pydantic text."""
    config = _config(tmp_path, ami={"hots": "10.0.0.1"})
    code, lines, _ = _check(capsys, config)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(
        f"crmtel: {config}, key ami.hots: no such key (valid: did you mean 'host'? keys of ami:"
    )
    assert "port" in lines[0]
    _plain(lines)


def test_unknown_time_zone_and_weekday_9_are_two_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `run` refuses is reported up front, one line each, with what would be valid."""
    config = _config(tmp_path, routing={"timezone": "Europe/Moskva", "working_days": [0, 9]})
    code, lines, _ = _check(capsys, config)
    assert code == 1
    assert lines == [
        f'crmtel: {config}, key routing.timezone: unknown time zone "Europe/Moskva" '
        '(valid: an IANA time zone such as "Europe/Moscow" or "Asia/Yekaterinburg")',
        f"crmtel: {config}, key routing.working_days: 9 is not a weekday "
        "(valid: 0 (Monday) … 6 (Sunday), e.g. [0, 1, 2, 3, 4])",
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "mysql://crmtel:db-pass-9c1@db.example/crm",
            '"mysql://crmtel:***@db.example/crm": crmtel keeps its records in SQLite or PostgreSQL, not mysql',
        ),
        ("notaurl", '"notaurl" is not a database URL'),
        (
            "sqlite:///var/lib/crmtel/crmtel.db",
            '"sqlite:///var/lib/crmtel/crmtel.db" names the synchronous driver pysqlite; crmtel needs aiosqlite '
            '(valid: "sqlite+aiosqlite:///var/lib/crmtel/crmtel.db")',
        ),
        (
            "postgresql://crmtel:db-pass-9c1@127.0.0.1/crm",
            "names the synchronous driver psycopg; crmtel needs asyncpg "
            '(valid: "postgresql+asyncpg://crmtel:***@127.0.0.1/crm")',
        ),
    ],
    ids=["mysql", "notaurl", "sqlite-sync", "postgres-sync"],
)
def test_database_urls_crmtel_cannot_use_are_one_line_from_the_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    expected: str,
) -> None:
    """Bad database URLs in CRMTEL_DATABASE_URL: one line naming the variable, no traceback, no password."""
    monkeypatch.setenv("CRMTEL_DATABASE_URL", url)
    code, lines, _ = _check(capsys, _config(tmp_path))
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("crmtel: environment CRMTEL_DATABASE_URL: ")
    assert expected in lines[0]
    assert "db-pass-9c1" not in lines[0]
    _plain([lines[0].replace("postgresql+asyncpg", "")])


def test_wrong_types_name_the_environment_variable_and_the_kind_of_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRMTEL_WEB__PORT=abc and an out-of-range port in the file: where, what, what would be valid."""
    monkeypatch.setenv("CRMTEL_WEB__PORT", "abc")
    config = _config(tmp_path, ami={"port": 70000, "auth": "sha"})
    code, lines, _ = _check(capsys, config)
    assert code == 1
    assert sorted(lines) == sorted(
        [
            f"crmtel: {config}, key ami.port: 70000 is out of range (valid: a number ≤ 65535)",
            f"crmtel: {config}, key ami.auth: \"sha\" is not one of the choices (valid: one of 'plain' or 'md5')",
            'crmtel: environment CRMTEL_WEB__PORT: "abc" is not a whole number (valid: a whole number such as 5038)',
        ]
    )
    _plain(lines)


def test_a_missing_ami_secret_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No secret anywhere: says so, and where to put it."""
    config = _config(tmp_path, ami={"secret": None})
    code, lines, _ = _check(capsys, config)
    assert code == 1
    assert lines == [
        'crmtel: default value of ami.secret: no AMI secret for PBX "pbx1" (valid: the secret of the crmtel '
        "user in manager.conf, e.g. CRMTEL_AMI__SECRET in /etc/crmtel/crmtel.env)"
    ]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port: int = sock.getsockname()[1]
        yield port


@pytest.mark.parametrize("key", ["web.port", "routing.agi_port"])
def test_a_port_in_use_is_reported_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], busy_port: int, key: str
) -> None:
    """The web or FastAGI port is taken: the key, the address, "in use", and what to do."""
    section, name = key.split(".")
    if section == "web":
        config = _config(tmp_path, web={name: busy_port})
    else:
        config = _config(tmp_path, routing={name: busy_port})
    code, lines, _ = _check(capsys, config)
    assert code == 1
    assert lines == [
        f"crmtel: {config}, key {key}: cannot listen on 127.0.0.1:{busy_port}: it is in use "
        "(valid: a free port, or stop the program that listens there)"
    ]


@pytest.mark.slow
async def test_run_refuses_with_the_same_lines_as_config_check(tmp_path: Path) -> None:
    """`crmtel run` on a bad config prints exactly what `config check` prints, and exits 1 without starting."""
    config = _config(tmp_path, routing={"timezone": "Mars/Olympus", "working_days": [7]})
    checked = await crmtel_cli("config", "check", "--config", str(config), cwd=tmp_path)
    ran = await crmtel_cli("--config", str(config), "run", cwd=tmp_path)
    assert checked.returncode == ran.returncode == 1
    assert ran.stderr == checked.stderr
    assert len(ran.stderr.splitlines()) == 2
    assert "Traceback" not in ran.stderr


@pytest.mark.slow
async def test_connect_reports_an_unreachable_database_and_pbx_and_masks_the_password(
    tmp_path: Path,
) -> None:
    """--connect: the database and the AMI are really tried; each failure is one line; no password shown."""
    dead_db, dead_ami = free_ports(2)
    config = _config(
        tmp_path,
        top={"database_url": f"postgresql+asyncpg://crmtel:pg-pass-41d@127.0.0.1:{dead_db}/crm"},
        ami={"port": dead_ami},
    )
    result = await crmtel_cli("config", "check", "--config", str(config), "--connect", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"crmtel: {config}, key database_url: cannot open the database: ")
    assert lines[1].startswith(
        f'crmtel: default value of ami.host: cannot reach the AMI of PBX "pbx1" at 127.0.0.1:{dead_ami}: '
    )
    assert "pg-pass-41d" not in result.stderr
    assert SECRET not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
async def test_connect_logs_in_to_the_pbx_and_reports_a_refused_secret(
    tmp_path: Path, traces_dir: Path
) -> None:
    """--connect against a PBX (the fake AMI server): the right secret passes, a wrong one is named as such."""
    server = FakeAmiServer(load_ami(traces_dir / "direct-answered.ami"), secret=SECRET)
    await server.start()
    port = server.port
    try:
        good = _config(tmp_path, ami={"port": server.port})
        ok = await crmtel_cli("config", "check", "--config", str(good), "--connect", cwd=tmp_path)
        bad = _config(tmp_path, "bad.toml", ami={"port": server.port, "secret": "not-the-secret"})
        refused = await crmtel_cli("config", "check", "--config", str(bad), "--connect", cwd=tmp_path)
    finally:
        await server.close()
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "configuration OK: database and every PBX answered"
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f'crmtel: {bad}, key ami.secret: PBX "pbx1" at 127.0.0.1:{port} refused the login of user '
        "\"crmtel\": Authentication failed (valid: the username and secret of crmtel's user in Asterisk's "
        "manager.conf (manager.d/crmtel.conf))"
    ]
    assert "not-the-secret" not in refused.stderr


def test_config_show_masks_every_secret_and_still_reports_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`config show`: AMI secret, tokens and the database password never printed; bad weekdays still reported."""
    monkeypatch.setenv("CRMTEL_DATABASE_URL", "postgresql+asyncpg://crmtel:pg-pass-41d@127.0.0.1/crm")
    monkeypatch.setenv("CRMTEL_ROUTING__HTTP_TOKEN", "route-token-5e2")
    monkeypatch.setenv("CRMTEL_WEB__METRICS_TOKEN", "metrics-token-8b7")
    config = _config(tmp_path, routing={"working_days": [9]})
    code = main(["--config", str(config), "config", "show"])
    out, err = capsys.readouterr()
    assert code == 1
    for secret in (SECRET, "pg-pass-41d", "route-token-5e2", "metrics-token-8b7"):
        assert secret not in out + err, secret
    assert '"database_url": "postgresql+asyncpg://crmtel:***@127.0.0.1/crm"' in out
    assert "routing.working_days: 9 is not a weekday" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--database-url", "notaurl", "import", "managers", "m.csv"],
            '--database-url: "notaurl" is not a database URL',
        ),
        (["--database-url", "mysql://u:pw-3e1@h/db", "calls", "list"], "not mysql"),
        (
            ["--database-url", "sqlite:///x.db", "db", "upgrade"],
            'crmtel needs aiosqlite (valid: "sqlite+aiosqlite:///x.db")',
        ),
        (["--database-url", "sqlite:///x.db", "manager", "list"], "names the synchronous driver pysqlite"),
    ],
    ids=["import-notaurl", "calls-mysql", "upgrade-sqlite", "manager-sqlite"],
)
def test_every_command_refuses_an_unusable_database_url_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    """Not only `run`: import, calls list, db upgrade, manager … say what is wrong with the URL, no traceback."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert "pw-3e1" not in err
    assert "Traceback" not in err


def test_a_table_given_as_one_environment_variable_names_the_key_inside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRMTEL_AMI='{...}': the variable and the key inside it, and the secret next to it never shown."""
    monkeypatch.setenv("CRMTEL_AMI", '{"port": "abc", "secret": "env-secret-9d2"}')
    code, lines, _ = _check(capsys, _config(tmp_path))
    assert code == 1
    assert lines == [
        'crmtel: environment CRMTEL_AMI, key ami.port: "abc" is not a whole number (valid: a whole number such as 5038)'
    ]


def _with_queue_owners(config: Path, **owners: str) -> Path:
    """The config with a ``[calls.queue_owners]`` table (queue = login) added at its end."""
    lines = ["[calls.queue_owners]", *(f"{queue} = {json.dumps(login)}" for queue, login in owners.items())]
    with config.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return config


async def test_connect_names_owners_that_are_no_active_manager(tmp_path: Path) -> None:
    """--connect: a ``[calls]`` owner that is no manager's login, or a manager no longer active, is one line each
    (where it was set, what is wrong); owners that are active managers pass."""
    config = _with_queue_owners(
        _config(tmp_path, calls={"default_owner": "nobody"}), retail="anna", vip="gone"
    )
    assert await asyncio.to_thread(main, ["--config", str(config), "db", "upgrade"]) == 0
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'crmtel.db'}")
    try:
        managers = ManagerRepository(db)
        await managers.save(login="anna", name="Anna", extensions=("101",))
        await managers.save(login="gone", name="Gone", extensions=("109",))
        await managers.set_active("gone", False)
    finally:
        await db.dispose()
    result = await crmtel_cli("config", "check", "--config", str(config), "--connect", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "owner" in line]
    assert lines == [
        f'crmtel: {config}, key calls.queue_owners.vip: "gone" is no longer active (valid: the login of an active '
        "manager (crmtel managers list))",
        f'crmtel: {config}, key calls.default_owner: "nobody" is no manager\'s login (valid: the login of an '
        "active manager (crmtel managers list))",
    ]


def test_an_empty_owner_login_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``default_owner = ""`` or a blank queue owner is a configuration mistake, not a silent "nobody"."""
    config = _with_queue_owners(_config(tmp_path, calls={"default_owner": " "}), retail="")
    code, lines, _ = _check(capsys, config)
    assert code == 1
    assert any("calls.default_owner" in line for line in lines), lines
    assert any("calls.queue_owners" in line for line in lines), lines


def test_config_show_masks_a_credential_in_a_webhook_urls_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receiver that takes its key in the query (``?token=…``, ``&api_key=…``): masked like a URL's password,
    the other parameters kept as they are."""
    config = _config(tmp_path)
    with config.open("a", encoding="utf-8") as f:
        f.write(
            "[[webhooks]]\n"
            'url = "https://hooks.example.ru/in?team=sales&token=tok-9f3e1&api_key=key-77c2"\n'
            'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n'
        )
    code = main(["--config", str(config), "config", "show"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for secret in ("tok-9f3e1", "key-77c2", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        assert secret not in out + err, secret
    assert "https://hooks.example.ru/in?team=sales&token=***&api_key=***" in out
