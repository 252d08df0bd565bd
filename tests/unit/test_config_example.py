"""The shipped example config names every setting the models have, with its real default, and nothing else."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from crmtel.config import AmiSettings, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "crmtel.toml"
# Tables whose keys are data (queue -> login, DID -> rule, extension -> user id), not settings.
DATA_TABLES = {("calls", "queue_owners"), ("routing", "dids"), ("amocrm", "users")}
# [[pbx]] repeats [ami]'s fields; the example shows only how to start one.
REPEATS = {("pbx",): ("ami",)}
# Lists of small tables written inline, as one key.
INLINE = {("ami", "originate", "dial_rules")}
# Commented-out examples that differ from the default on purpose; their comment names the default.
EXAMPLES = {"routing.working_days"}
_SECTION = re.compile(r"^#?\s*\[\[?([A-Za-z0-9_.]+)\]\]?")
_KEY = re.compile(r"^(#\s*)?([a-z_][a-z0-9_]*)\s*=\s*(.*)$")


def _shown() -> dict[tuple[str, ...], dict[str, tuple[bool, str]]]:
    """Each section's keys as written, set or commented out: section -> key -> (commented, value text)."""
    section: tuple[str, ...] = ()
    shown: dict[tuple[str, ...], dict[str, tuple[bool, str]]] = {(): {}}
    for line in EXAMPLE.read_text().splitlines():
        if match := _SECTION.match(line):
            section = tuple(match.group(1).split("."))
            if section[:2] in DATA_TABLES:
                section = section[:2]
            shown.setdefault(section, {})
        elif (match := _KEY.match(line)) and section not in DATA_TABLES:
            value = re.split(r"\s+#", match.group(3))[0].strip()
            commented = match.group(1) is not None
            if not commented or match.group(2) not in shown[section]:  # a set value beats an example of it
                shown[section][match.group(2)] = (commented, value)
    return shown


def _model(section: tuple[str, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Settings
    for part in section:
        annotation = model.model_fields[part].annotation
        (model,) = [
            a
            for a in (annotation, *typing.get_args(annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
    return model


def _sections(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], set[str]]:
    """Every settings table under ``model`` with its plain keys (nested models and data tables apart)."""
    found: dict[tuple[str, ...], set[str]] = {prefix: set()}
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        args = (field.annotation, *typing.get_args(field.annotation))
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested and path not in REPEATS and path not in DATA_TABLES and path not in INLINE:
            found.update(_sections(nested[0], path))
        elif path not in DATA_TABLES and path not in REPEATS:
            found[prefix].add(name)
    return found


def test_every_setting_is_in_the_example_and_every_key_there_is_a_setting() -> None:
    """A setting missing from config/crmtel.toml is one nobody finds; a key there that no model has is refused at start."""
    shown = _shown()
    wanted = _sections(Settings)
    assert set(shown) - set(wanted) - DATA_TABLES - set(REPEATS) == set(), "sections the models do not have"
    missing = {
        s: sorted(keys - set(shown.get(s, {}))) for s, keys in wanted.items() if keys - set(shown.get(s, {}))
    }
    assert missing == {}, "settings missing from config/crmtel.toml"
    unknown = {
        s: sorted(set(keys) - wanted[s]) for s, keys in shown.items() if s in wanted and set(keys) - wanted[s]
    }
    assert unknown == {}, "keys in config/crmtel.toml that are no setting"
    for section, model in REPEATS.items():
        assert set(shown[section]) <= set(_model(model).model_fields)


def _default(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_default(v) for v in value]
    return value


def test_commented_out_values_are_the_real_defaults() -> None:
    """A line left commented out must show what crmtel does without it (examples of optional ones aside)."""
    wrong = {}
    for section, keys in _shown().items():
        if section in DATA_TABLES or section in REPEATS or section == ("webhooks",):
            continue
        model = _model(section)
        for key, (commented, text) in keys.items():
            default = model.model_fields[key].default
            if not commented or default in (None, "", ()) or _default(default) in ("", []):
                continue  # set on purpose, or an optional value shown by example
            value = tomllib.loads(f"v = {text}")["v"]
            if value != _default(default) and ".".join((*section, key)) not in EXAMPLES:
                wrong[".".join((*section, key))] = (value, _default(default))
    assert wrong == {}


def test_the_set_values_load_through_the_real_loader() -> None:
    """The file as shipped loads, and its [ami] is the same model as any [[pbx]] table."""
    settings = load_settings(EXAMPLE)
    assert isinstance(settings.ami, AmiSettings)
    assert settings.web.card_cache_size == 10_000
    assert settings.cluster.pool_size == 8


def test_the_readme_configuration_table_names_every_section_and_key() -> None:
    """README's "Configuration" table lists every section and every key (a setting it omits is one nobody reads of)."""
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    table = readme.split("| section | keys |", 1)[1].split("\n\n", 1)[0]
    rows = {
        section: row
        for row in table.splitlines()
        for section in re.findall(r"`\[\[?([a-z0-9]+)\]\]?`", row.split("|")[1] if row.count("|") > 2 else "")
    }
    for section, keys in _sections(Settings).items():
        if not section:
            continue
        row = rows.get(section[0], "")
        assert row, f"no row for [{section[0]}]"
        absent = sorted(key for key in keys if f"`{key}`" not in row)
        assert absent == [], f"[{'.'.join(section)}] keys missing from the README's row"


def test_every_file_of_the_repository_the_example_names_exists() -> None:
    """A comment pointing at deploy/… that is not there sends the admin nowhere."""
    named = set(re.findall(r"\b((?:deploy|config|bench|docs)/[\w./-]*\w)", EXAMPLE.read_text()))
    assert named, "the example names no file: the pattern is broken"
    assert sorted(p for p in named if not (EXAMPLE.parents[1] / p).exists()) == []
