"""The shipped catalogues: same keys in every language, same placeholders, valid plural forms."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from babel import Locale

from crmtel.errors import ConfigError
from crmtel.i18n import LANGUAGES, Catalogues, Translator
from crmtel.i18n.catalogue import placeholders

ROOT = Path(str(resources.files("crmtel.i18n") / "catalogues"))


def _files(lang: str) -> set[str]:
    return {p.name for p in (ROOT / lang).glob("*.json")}


def test_every_language_has_the_same_feature_files() -> None:
    """A feature catalogue added in one language exists in all of them."""
    names = {lang: _files(lang) for lang in LANGUAGES}
    assert names["ru"], "no catalogues found"
    for lang in LANGUAGES:
        assert names[lang] == names["ru"], lang


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "ru"])
def test_every_key_exists_in_russian_and_the_other_language(lang: str) -> None:
    """Each catalogue has exactly the keys of its Russian twin."""
    cats = Catalogues.load()
    ru, other = cats.language("ru"), cats.language(lang)
    assert sorted(set(ru) - set(other)) == [], f"missing in {lang}"
    assert sorted(set(other) - set(ru)) == [], "missing in ru"


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "ru"])
def test_placeholders_match_between_languages(lang: str) -> None:
    """A message takes the same {params} in every language (and plural ones are plural everywhere)."""
    cats = Catalogues.load()
    ru, other = cats.language("ru"), cats.language(lang)
    for key, message in ru.items():
        assert placeholders(message) == placeholders(other[key]), key
        assert isinstance(message, str) == isinstance(other[key], str), key


def test_plural_messages_have_every_cldr_form_of_their_language() -> None:
    """Russian plurals carry one/few/many/other, English one/other, and use {count}."""
    cats = Catalogues.load()
    for lang in LANGUAGES:
        needed = set(Locale.parse(lang).plural_form.tags) | {"other"}
        for key, message in cats.language(lang).items():
            if not isinstance(message, str):
                assert needed <= set(message), (lang, key)
                assert "count" in placeholders(message), (lang, key)


def test_catalogue_files_are_utf8_objects_of_strings_or_plural_objects() -> None:
    """Every file parses as a flat object whose keys start with the file's feature name."""
    for lang in LANGUAGES:
        for path in (ROOT / lang).glob("*.json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            assert isinstance(data, dict)
            assert all(k.startswith(path.stem + ".") for k in data), path


def test_a_russian_translator_never_falls_back_to_an_unknown_key() -> None:
    """Every Russian key translates to something other than the key itself."""
    tr = Translator.for_locale("ru")
    for key in Catalogues.load().language("ru"):
        assert tr.t(key, count=1) != key


def test_a_key_defined_in_two_files_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading fails loudly (naming the key) rather than one file silently winning over another."""
    import importlib.resources

    for lang in LANGUAGES:
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "a.json").write_text('{"a.x": "1"}', encoding="utf-8")
        (tmp_path / lang / "b.json").write_text('{"a.x": "2"}', encoding="utf-8")

    class _Files:
        def __truediv__(self, _name: str) -> Path:
            return tmp_path

    monkeypatch.setattr(importlib.resources, "files", lambda _pkg: _Files())
    with pytest.raises(ConfigError, match=r"'a.x'"):
        Catalogues.load()
