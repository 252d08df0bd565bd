"""``CI`` means CI only when it says so: "true", "1" or "yes" in any case (tests/fixtures/ci.py)."""

from __future__ import annotations

import pytest

from tests.fixtures.ci import in_ci


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", "yes", "Yes", " true "])
def test_ci_is_true_for_true_words(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no", "", "off", "maybe"])
def test_ci_is_false_otherwise(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert not in_ci()


def test_ci_unset_is_not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert not in_ci()
