"""`crmtel config webphone-endpoints` for FreePBX: the file FreePBX includes is written with FreePBX's include
advice, and a file FreePBX rewrites on "Apply Config" is refused before any credential is drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmtel.cli import build_parser
from crmtel.config import AmiSettings, Settings, WebphoneSettings
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.store.sip_credentials import SipCredentialRepository
from tests.integration.test_web_app import seed_managers


def _settings(database_url: str, endpoints: Path, flavour: str = "asterisk") -> Settings:
    return Settings(
        database_url=database_url,
        ami=AmiSettings.model_validate({"flavour": flavour}),
        webphone=WebphoneSettings(
            enabled=True, ws_url="wss://pbx.example.com:8089/ws", endpoints_file=endpoints, reload=False
        ),
    )


async def _cli(argv: list[str], settings: Settings) -> int:
    args = build_parser().parse_args(argv)
    code: int = await args.handler(args, settings)
    return code


async def test_freepbx_s_own_pjsip_files_are_refused_and_nothing_is_drawn(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """--flavour freepbx with pjsip.endpoint.conf as the target: refused with where to write instead, the file
    untouched and no credential drawn (a page would otherwise get one the PBX loses at the next reload)."""
    await seed_managers(db)
    target = tmp_path / "pjsip.endpoint.conf"
    target.write_text("; FreePBX's\n", encoding="utf-8")
    with pytest.raises(CrmtelError, match=r"pjsip_custom_post\.conf"):
        await _cli(["config", "webphone-endpoints", "--flavour", "freepbx"], _settings(database_url, target))
    assert target.read_text(encoding="utf-8") == "; FreePBX's\n"
    assert await SipCredentialRepository(db).all() == {}


async def test_the_ami_flavour_picks_freepbx_and_the_file_says_where_to_include_it(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """With [ami] flavour = "freepbx" and no --flavour, crmtel's own file gets the FreePBX include advice; the
    same owned name is refused by that flavour too, and accepted for plain Asterisk (it owns nothing)."""
    await seed_managers(db)
    ours = tmp_path / "pjsip_crmtel_webphone.conf"
    assert await _cli(["config", "webphone-endpoints"], _settings(database_url, ours, "freepbx")) == 0
    text = ours.read_text(encoding="utf-8")
    assert "#include this file from /etc/asterisk/pjsip_custom_post.conf" in text
    assert "[99101]" in text
    owned = tmp_path / "pjsip.conf"
    with pytest.raises(CrmtelError, match="FreePBX's own file"):
        await _cli(["config", "webphone-endpoints"], _settings(database_url, owned, "freepbx"))
    assert await _cli(["config", "webphone-endpoints"], _settings(database_url, owned)) == 0
    assert "pjsip_custom_post.conf" not in owned.read_text(encoding="utf-8")
