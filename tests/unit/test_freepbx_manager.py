"""FreePBX's AMI user file appends to FreePBX's own [general] and stays least-privileged."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "asterisk"


def _sections(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^\[[^\]]+\](?:\([^)]*\))?", text, flags=re.M)


def test_general_is_appended_to_not_redefined() -> None:
    """manager_custom.conf is included after FreePBX's [general]: only ``[general](+)`` reaches it."""
    sections = _sections(DEPLOY / "manager_custom.conf")
    assert sections == ["[general](+)", "[crmtel]"]


def test_timestampevents_is_on_and_bindaddr_left_to_freepbx() -> None:
    """The appended [general] turns on timestampevents and leaves bindaddr/port/enabled to FreePBX."""
    conf = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
    conf.read(DEPLOY / "manager_custom.conf", encoding="utf-8")
    assert dict(conf["general"]) == {"timestampevents": "yes"}


def test_freepbx_user_matches_the_plain_asterisk_user() -> None:
    """Both files grant the crmtel user the same rights, with no cdr class (crmtel reads no Cdr events)."""
    users = []
    for name in ("manager_custom.conf", "manager.d/crmtel.conf"):
        conf = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
        conf.read(DEPLOY / name, encoding="utf-8")
        users.append({k: v for k, v in conf["crmtel"].items() if k != "secret"})
    assert users[0] == users[1]
    read = {c.strip() for c in users[0]["read"].split(",")}
    assert read == {"system", "call", "agent", "dialplan"}
    assert (users[0]["deny"], users[0]["permit"]) == ("0.0.0.0/0.0.0.0", "127.0.0.1/255.255.255.255")


def test_the_readme_says_where_every_file_goes() -> None:
    """deploy/asterisk/README.md names each shipped Asterisk file, for plain Asterisk and for FreePBX."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for path in DEPLOY.glob("*.conf"):
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{path.name}` |")), None)
        assert row is not None, path.name
        assert row.count("|") == 5, row
