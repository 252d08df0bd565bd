"""Settings: the shipped example file is valid, the environment overrides it, and bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmtel.config import load_settings
from crmtel.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "crmtel.toml"


def test_example_config_file_is_valid() -> None:
    """config/crmtel.toml, as shipped, loads without errors."""
    settings = load_settings(EXAMPLE)
    assert settings.ami.port == 5038
    assert settings.routing.agi_port == 4573


def test_environment_overrides_file_with_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """CRMTEL_AMI__HOST and CRMTEL_DATABASE_URL win over the file."""
    monkeypatch.setenv("CRMTEL_AMI__HOST", "10.0.0.5")
    monkeypatch.setenv("CRMTEL_DATABASE_URL", "postgresql+asyncpg://u@db/crm")
    settings = load_settings(EXAMPLE)
    assert settings.ami.host == "10.0.0.5"
    assert settings.database_url == "postgresql+asyncpg://u@db/crm"
    assert settings.ami.username == "crmtel"


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    """A typo in the file is reported, not silently ignored."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[ami]\nhots = 'x'\n")
    with pytest.raises(ConfigError, match="hots"):
        load_settings(bad)


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    """Invalid TOML gives a ConfigError naming the file."""
    bad = tmp_path / "broken.toml"
    bad.write_text("[ami\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_settings_are_frozen() -> None:
    """Loaded settings cannot be changed at run time."""
    settings = load_settings(None)
    with pytest.raises(ValueError, match="frozen"):
        settings.region = "GB"  # type: ignore[misc]


def test_several_pbxes() -> None:
    """Extra [[pbx]] tables add connections next to [ami]."""
    settings = load_settings(None, pbx=[{"name": "branch", "host": "10.1.2.3"}])
    assert [p.name for p in settings.pbxes] == ["pbx1", "branch"]


def test_duplicate_pbx_names_are_refused() -> None:
    """Two PBXs with one name would mix their calls; that is a configuration error."""
    with pytest.raises(ConfigError, match="unique"):
        load_settings(None, pbx=[{"name": "pbx1"}])


def test_a_file_of_thousands_of_wrong_keys_gives_a_bounded_error(tmp_path: Path) -> None:
    """2,000 unknown tables and a key of 200,000 characters (a file under the size limit): the first 20
    problems, each one line of at most 2,000 characters, and how many more — not 2,001 lines and a 200 KB echo."""
    from crmtel.errors import ConfigProblems

    path = tmp_path / "crmtel.toml"
    path.write_text("k" * 200_000 + " = 1\n" + "".join(f"[t{i}]\nx = 1\n" for i in range(2000)))
    with pytest.raises(ConfigProblems) as raised:
        load_settings(path)
    lines = raised.value.lines
    assert len(lines) == 21
    assert all(len(line) <= 2000 for line in lines)
    assert lines[-1] == "… and 1981 more problem(s)"
    assert all("no such key" in line for line in lines[1:20])
