"""Browser-phone credentials handled like passwords: only the manager's own session gets theirs, never a
password anywhere, replaced (and the PJSIP include rewritten) on `manager passwd` and deactivation."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import stat
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from crmtel.apitokens.models import Scope
from crmtel.cli import build_parser
from crmtel.config import Settings, WebphoneSettings, WebSettings
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.store.db import Database
from crmtel.store.sip_credentials import SipCredentialRepository
from crmtel.webphone.sync import sync_endpoints
from crmtel.webphone.web import webphone_routes
from tests.fixtures.csrf import page_like_session
from tests.integration.test_web_app import PASSWORD, seed_managers

WS = "wss://pbx.example.com:8089/ws"


def _settings(database_url: str, endpoints: Path | None = None) -> Settings:
    return Settings(
        database_url=database_url,
        webphone=WebphoneSettings(enabled=True, ws_url=WS, endpoints_file=endpoints, reload=False),
    )


def _digests(text: str) -> dict[str, str]:
    """device -> HA1 as the PJSIP include file has them."""
    out = {}
    for section in re.split(r"(?m)^(?=\[)", text):
        head = re.match(r"\[(\d+)\]\ntype = auth\n", section)
        digest = re.search(r"(?m)^password_digest = MD5:([0-9a-f]{32})$", section)
        if head and digest:
            out[head.group(1)] = digest.group(1)
    return out


async def _cli(argv: list[str], settings: Settings) -> int:
    args = build_parser().parse_args(argv)
    code: int = await args.handler(args, settings)
    return code


def _all_scopes() -> list[str]:
    return [a for s in Scope for a in ("--scope", s.value)]


async def _cli_out(argv: list[str], settings: Settings) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert await _cli(argv, settings) == 0
    return buffer.getvalue().strip().splitlines()[-1]


async def test_only_the_managers_own_session_gets_their_credential(
    db: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Anna's page gets Anna's device 99101 and the hash in the PBX's file; Boris's page gets his own 99102 and
    nothing of Anna's; the head (no phone) a 404; without a session a 401, with anna's API token (every scope)
    a refusal; the answer is never cached."""
    # INFO and up: what crmtel logs (a database driver's DEBUG echo of SQL parameters is not a log anyone runs).
    caplog.set_level(logging.INFO)
    await seed_managers(db)
    settings = _settings(database_url)
    synced = await sync_endpoints(settings, db)
    in_file = _digests(synced.text)
    assert set(in_file) == {"99101", "99102", "99103"}
    app = create_app(
        WebSettings(port=0),
        db=db,
        hub=Hub(),
        routes=(webphone_routes(settings.webphone, SipCredentialRepository(db)),),
    )
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    base = str(server.make_url("/"))
    try:
        seen: dict[str, dict[str, object]] = {}
        for login in ("anna", "boris"):
            async with page_like_session(base_url=base) as page:
                async with page.post("/api/login", json={"login": login, "password": PASSWORD}) as r:
                    assert r.status == 200
                async with page.get("/api/phone") as r:
                    assert r.status == 200
                    assert r.headers["Cache-Control"] == "no-store"
                    seen[login] = await r.json()
        assert (seen["anna"]["device"], seen["anna"]["extension"]) == ("99101", "101")
        assert seen["anna"]["ha1"] == in_file["99101"]
        assert (seen["anna"]["uri"], seen["anna"]["ws_url"]) == ("sip:99101@pbx.example.com", WS)
        assert (seen["boris"]["device"], seen["boris"]["ha1"]) == ("99102", in_file["99102"])
        assert in_file["99101"] not in json.dumps(seen["boris"])
        async with page_like_session(base_url=base) as head:
            async with head.post("/api/login", json={"login": "head", "password": PASSWORD}) as r:
                assert r.status == 200
            async with head.get("/api/phone") as r:
                assert r.status == 404
                assert (await r.json())["key"] == "webphone.no_device"
        async with ClientSession(base_url=base) as nobody, nobody.get("/api/phone") as r:
            assert r.status == 401
            assert in_file["99101"] not in await r.text()
        # An API token of anna's with every scope is still not her page: the credential is the session's only.
        token = await _cli_out(["token", "create", "--manager", "anna", *_all_scopes()], settings)
        async with ClientSession(base_url=base) as script:
            async with script.get("/api/phone", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status in (401, 403)
                assert in_file["99101"] not in await r.text()
            async with script.get("/api/me", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200, "the token itself works"
    finally:
        await server.close()
    for digest in in_file.values():
        assert digest not in caplog.text, "a credential reached the log"


async def test_passwd_and_deactivation_replace_the_credential_in_the_pjsip_file(
    db: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`manager passwd anna` rewrites the include with a new hash for 99101 (Boris's stays); `deactivate`
    takes 99101 out; `activate` brings a third hash; the file is 0640 and `config show` has no hash."""
    await seed_managers(db)
    endpoints = tmp_path / "pjsip_crmtel_webphone.conf"
    settings = _settings(database_url, endpoints)
    assert await _cli(["config", "webphone-endpoints"], settings) == 0
    first = _digests(endpoints.read_text(encoding="utf-8"))
    assert set(first) == {"99101", "99102", "99103"}
    assert stat.S_IMODE(endpoints.stat().st_mode) == 0o640

    monkeypatch.setattr("sys.stdin", io.StringIO("new-pass-42\n"))
    assert await _cli(["manager", "passwd", "anna"], settings) == 0
    second = _digests(endpoints.read_text(encoding="utf-8"))
    assert second["99101"] != first["99101"], "the old credential is gone from the PBX's file"
    assert (second["99102"], second["99103"]) == (first["99102"], first["99103"])
    stored = await SipCredentialRepository(db).all()
    assert {c.ha1 for c in stored.values()} == set(second.values())

    assert await _cli(["manager", "deactivate", "anna"], settings) == 0
    third = _digests(endpoints.read_text(encoding="utf-8"))
    assert "99101" not in third
    assert "[99101]" not in endpoints.read_text(encoding="utf-8")
    assert await _cli(["manager", "activate", "anna"], settings) == 0
    fourth = _digests(endpoints.read_text(encoding="utf-8"))
    assert fourth["99101"] not in {first["99101"], second["99101"]}
    out = capsys.readouterr().out
    assert "browser phones: 3 in" in out

    capsys.readouterr()
    assert await _cli(["config", "show"], settings) in (0, 1)
    shown = capsys.readouterr().out
    assert "webphone" in shown
    assert not any(d in shown for d in (*first.values(), *fourth.values()))


async def test_printing_the_endpoints_writes_no_file(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config webphone-endpoints --output -` prints the include (for a PBX on another host) and reloads nothing."""
    await seed_managers(db)
    assert await _cli(["config", "webphone-endpoints", "--output", "-"], _settings(database_url)) == 0
    text = capsys.readouterr().out
    assert set(_digests(text)) == {"99101", "99102", "99103"}


async def test_an_import_that_changes_a_password_replaces_the_credential_on_the_pbx(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """`crmtel import managers` with a new password for anna rewrites the include: her old hash is gone at once
    (the import ended her sessions and dropped the credential; the file must not keep accepting it)."""
    await seed_managers(db)
    endpoints = tmp_path / "pjsip_crmtel_webphone.conf"
    settings = _settings(database_url, endpoints)
    assert await _cli(["config", "webphone-endpoints"], settings) == 0
    before = _digests(endpoints.read_text(encoding="utf-8"))
    sheet = tmp_path / "managers.csv"
    sheet.write_text(
        "login;name;extensions;role;speciality;active;password\nanna;Анна Смирнова;101;manager;;yes;brand-new-pw\n",
        encoding="utf-8",
    )
    assert await _cli(["import", "managers", str(sheet)], settings) == 0
    after = _digests(endpoints.read_text(encoding="utf-8"))
    assert after["99101"] != before["99101"]
    assert after["99102"] == before["99102"]


async def test_passwd_without_an_endpoints_file_says_the_pbx_still_has_the_old_credential(
    db: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The admin writes the include with --output (no endpoints_file): `manager passwd anna` drops her credential
    in the store, and the PBX keeps accepting the old one until the include is written again — the command says
    so (it said nothing); an unrelated change with nothing to redraw says nothing."""
    await seed_managers(db)
    settings = _settings(database_url)
    written = tmp_path / "by-hand.conf"
    assert (
        await _cli(["config", "webphone-endpoints", "--output", str(written), "--no-reload"], settings) == 0
    )
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("new-pass-42\n"))
    assert await _cli(["manager", "passwd", "anna"], settings) == 0
    out = capsys.readouterr().out
    assert "1 credential(s) to draw and 0 to drop" in out, out
    assert "webphone-endpoints --output" in out
    assert (
        await _cli(["config", "webphone-endpoints", "--output", str(written), "--no-reload"], settings) == 0
    )
    capsys.readouterr()
    assert await _cli(["manager", "activate", "anna"], settings) == 0
    assert "browser phones" not in capsys.readouterr().out


async def test_manager_add_refuses_a_login_the_import_refuses(
    db: Database, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`manager add --login` with a newline (or a space) is refused as `import managers` refuses it — it was saved
    and written into the PJSIP include, where its lines became sections of pjsip.conf."""
    endpoints = tmp_path / "pjsip_crmtel_webphone.conf"
    settings = _settings(database_url, endpoints)
    for login in ("evil\n[trunk]\ntype=endpoint", "two words", ""):
        with pytest.raises(SystemExit):
            await _cli(["manager", "add", "--login", login, "--name", "Evil", "--extension", "150"], settings)
        assert "is not a login" in capsys.readouterr().err
    assert not endpoints.exists()
    assert (
        await _cli(
            ["manager", "add", "--login", "ok.login-1", "--name", "Ok", "--extension", "150"], settings
        )
        == 0
    )
    assert "[99150]" in endpoints.read_text(encoding="utf-8")
