"""Message catalogues: one JSON file per feature and language, loaded and merged once.

``catalogues/<lang>/<feature>.json`` holds flat keys ``"<feature>.<name>": "text {param}"``; a plural entry
is an object of CLDR plural categories (``one``, ``few``, ``many``, ``other``, …) chosen by the ``count``
parameter. Every key of a file starts with the file's feature name, so two files never collide.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

from babel import Locale

from crmtel.errors import ConfigError

# The languages crmtel speaks; the first is the default.
LANGUAGES: tuple[str, ...] = ("ru", "en")
DEFAULT_LANGUAGE = LANGUAGES[0]

Message = str | Mapping[str, str]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})


def placeholders(message: Message) -> frozenset[str]:
    """The ``{param}`` names a message uses (over every plural form)."""
    texts = [message] if isinstance(message, str) else list(message.values())
    return frozenset(name for text in texts for name in _PLACEHOLDER.findall(text))


def substitute(text: str, params: Mapping[str, str]) -> str:
    """``text`` with each ``{name}`` replaced by its parameter; unknown names stay as written."""
    return _PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True, slots=True)
class Catalogues:
    """Every language's merged messages (read-only)."""

    messages: Mapping[str, Mapping[str, Message]]

    @classmethod
    def load(cls) -> Catalogues:
        """Read the catalogues shipped in the package; a malformed one is a ConfigError naming the file."""
        root = resources.files("crmtel.i18n") / "catalogues"
        merged: dict[str, Mapping[str, Message]] = {}
        for lang in LANGUAGES:
            messages: dict[str, Message] = {}
            for feature, entries in _feature_files(root / lang, lang):
                for key, value in entries.items():
                    if key in messages:
                        raise ConfigError(f"catalogue {lang}/{feature}.json: key {key!r} defined twice")
                    messages[key] = value
            merged[lang] = MappingProxyType(messages)
        return cls(MappingProxyType(merged))

    def language(self, lang: str) -> Mapping[str, Message]:
        """The merged messages of one language (the default language for an unknown one)."""
        return self.messages.get(lang) or self.messages[DEFAULT_LANGUAGE]

    def as_json(self, lang: str) -> str:
        """One language's merged catalogue as the browser loads it."""
        plain = {k: v if isinstance(v, str) else dict(v) for k, v in self.language(lang).items()}
        return json.dumps(plain, ensure_ascii=False, sort_keys=True)


def _feature_files(folder: Traversable, lang: str) -> Iterator[tuple[str, dict[str, Message]]]:
    plural_categories = frozenset(Locale.parse(lang).plural_form.tags) | {"other"}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        feature = entry.name.removesuffix(".json")
        where = f"catalogue {lang}/{entry.name}"
        try:
            data = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ConfigError(f"{where} cannot be read: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a JSON object")
        entries: dict[str, Message] = {}
        for key, value in data.items():
            if not key.startswith(f"{feature}."):
                raise ConfigError(f"{where}: key {key!r} must start with {feature!r}.")
            entries[key] = _message(where, key, value, plural_categories)
        yield feature, entries


def _message(where: str, key: str, value: object, categories: frozenset[str]) -> Message:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value and all(isinstance(v, str) for v in value.values()):
        unknown = set(value) - _CATEGORIES
        if unknown or "other" not in value:
            raise ConfigError(f"{where}: {key!r} needs CLDR plural forms with 'other', got {sorted(value)}")
        missing = categories - set(value)
        if missing:
            raise ConfigError(f"{where}: {key!r} lacks the plural forms {sorted(missing)}")
        return MappingProxyType(dict(value))
    raise ConfigError(f"{where}: {key!r} must be a text or an object of plural forms")
