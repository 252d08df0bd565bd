"""Bad-input messages in the asker's language: pydantic's error types and the loader's own errors, translated.

``inputs.InputError`` keeps its English text (logs, tests); at the edge ``localize`` replaces what the person
reads — the summary and each field's message — with the catalogue's words for the same problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crmtel.i18n import Translator

# pydantic error type -> catalogue key (under messages.input_*) and the context value shown as {limit}/{count}.
_TYPES: Mapping[str, tuple[str, str | None]] = {
    "missing": ("messages.input_missing", None),
    "string_type": ("messages.input_text", None),
    "string_too_long": ("messages.input_too_long", "max_length"),
    # Trimmed text (strip_whitespace) is checked after the strip and reported as a generic "too_long".
    "too_long": ("messages.input_too_long", "max_length"),
    "too_short": ("messages.input_too_short", None),
    "string_too_short": ("messages.input_too_short", None),
    "int_type": ("messages.input_integer", None),
    "int_parsing": ("messages.input_integer", None),
    "int_from_float": ("messages.input_integer", None),
    "greater_than_equal": ("messages.input_min", "ge"),
    "greater_than": ("messages.input_above", "gt"),
    "less_than_equal": ("messages.input_max", "le"),
    "less_than": ("messages.input_below", "lt"),
    "extra_forbidden": ("messages.input_unknown", None),
    "bool_type": ("messages.input_bool", None),
    "bool_parsing": ("messages.input_bool", None),
    "decimal_type": ("messages.input_number", None),
    "decimal_parsing": ("messages.input_number", None),
    "float_type": ("messages.input_number", None),
    "float_parsing": ("messages.input_number", None),
    "datetime_type": ("messages.input_datetime", None),
    "datetime_parsing": ("messages.input_datetime", None),
    "datetime_from_date_parsing": ("messages.input_datetime", None),
    "timezone_aware": ("messages.input_datetime", None),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One field's problem as pydantic reported it."""

    field: str
    type: str
    context: Mapping[str, Any]


def field_label(tr: Translator, field: str) -> str:
    """A field's name as people read it (``название``), or the field as sent when the catalogue lacks it."""
    key = f"messages.field_{field}"
    return tr.t(key) if key in tr.messages else field


def problem_text(tr: Translator, problem: Problem) -> str:
    """What is wrong with one field, in ``tr``'s language."""
    key, limit = _TYPES.get(problem.type, ("messages.input_invalid_value", None))
    value = problem.context.get(limit) if limit else None
    if key == "messages.input_too_long" and isinstance(value, int):
        return tr.t(key, count=value)
    return tr.t(key, limit=value if value is not None else "")


def localize(
    tr: Translator, key: str | None, params: Mapping[str, object], problems: Sequence[Problem]
) -> tuple[str | None, list[dict[str, str]]]:
    """The translated summary (None when there is nothing to translate) and per-field messages."""
    fields = [
        {"field": p.field, "message": f"{field_label(tr, p.field)}: {problem_text(tr, p)}", "type": p.type}
        for p in problems
    ]
    if problems:
        details = "; ".join(f["message"] for f in fields[:3])
        return tr.t(key or "messages.input_invalid", details=details), fields
    if key is not None:
        return tr.t(key, **params), fields
    return None, fields
