"""Validation errors turned into one plain line each: where, what is wrong, what would be valid.

No pydantic wording or documentation URL reaches the admin, and no secret is ever repeated back.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from crmtel.configcheck.origins import Loc, Origins, dotted

# Keys whose values are never shown, whatever their type.
SECRET_NAMES = frozenset({"secret", "password", "token", "http_token", "metrics_token"})
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
# A URL's query, and the names of its parameters that carry a credential (``?token=…``, ``&api_key=…``,
# ``?sig=…``): their values are secrets like a URL's password.
_URL_QUERY = re.compile(r"(://[^\s?#\"']*\?)([^\s#\"']*)")
_SECRET_PARAM = re.compile(r"token|key|secret|passw|pwd|sig|auth|code|session", re.IGNORECASE)


def _query_params(query: str) -> list[tuple[str, str | None]]:
    params: list[tuple[str, str | None]] = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        params.append((name, value if sep else None))
    return params


def _masked_query(match: re.Match[str]) -> str:
    parts = []
    for name, value in _query_params(match.group(2)):
        if value is None:
            parts.append(name)
        else:
            parts.append(f"{name}={'***' if value and _SECRET_PARAM.search(name) else value}")
    return match.group(1) + "&".join(parts)


def _query_secrets(text: str) -> list[str]:
    return [
        value
        for match in _URL_QUERY.finditer(text)
        for name, value in _query_params(match.group(2))
        if value and value != "***" and _SECRET_PARAM.search(name)
    ]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration."""

    origin: str
    what: str
    valid: str

    def __str__(self) -> str:
        return (
            f"{self.origin}: {self.what} (valid: {self.valid})"
            if self.valid
            else f"{self.origin}: {self.what}"
        )


def mask_url(text: str) -> str:
    """``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``, ``https://h/x?token=t`` -> ``…?token=***``
    (also inside longer text)."""
    return _URL_QUERY.sub(_masked_query, _URL_PASSWORD.sub(r"\1***\3", text))


def secret_values(settings: BaseModel) -> list[str]:
    """Every secret in the settings: SecretStr values, and passwords inside URL values."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.extend(m.group(2) for m in _URL_PASSWORD.finditer(value))
            found.extend(_query_secrets(value))

    walk(settings)
    return [s for s in found if s]


class Redactor:
    """Replaces every known secret in a text by ``***`` (log lines, error messages, ``config show``)."""

    # Shorter secrets would mask ordinary words and numbers; URL passwords are masked by their position anyway.
    MIN_LENGTH = 4

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= self.MIN_LENGTH}, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: BaseModel) -> Redactor:
        """A redactor for every secret of these settings."""
        return cls(secret_values(settings))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return mask_url(text)


def shown(loc: Loc, value: object) -> str:
    """The value as a message may quote it: secrets hidden, URLs without passwords, long values cut."""
    name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if name in SECRET_NAMES or isinstance(value, SecretStr):
        return "(hidden)"
    text = mask_url(repr(value) if not isinstance(value, str) else f'"{value}"')
    return text if len(text) <= 60 else text[:57] + "…"


def _unwrap(annotation: Any) -> type[BaseModel] | None:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _unwrap(arg)
            if found is not None:
                return found
        return None
    if origin in (tuple, list, dict):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return _unwrap(args[-1]) if args else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The settings class whose keys live at ``loc`` (``("ami",)`` -> AmiSettings), if any."""
    model: type[BaseModel] | None = root
    skip_key = False
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        skip_key = get_origin(info.annotation) is dict
        model = _unwrap(info.annotation)
    return model


def _bound(ctx: dict[str, Any]) -> str:
    for key, word in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if key in ctx:
            return f"a number {word} {ctx[key]}"
    return "a number in range"


def translate_one(error: Any, origins: Origins, root: type[BaseModel]) -> Problem:
    """One pydantic error as a Problem."""
    loc: Loc = tuple(error["loc"])
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = shown(loc, error.get("input"))
    origin = origins.of(loc)
    if kind == "extra_forbidden":
        section = model_at(root, loc[:-1])
        known = sorted(section.model_fields) if section is not None else []
        # A typo is a short key; a key of a million characters would cost difflib seconds for nothing.
        close = difflib.get_close_matches(str(loc[-1])[:64], known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        where = dotted(loc[:-1]) or "the top level"
        return Problem(origin, "no such key", f"{hint}keys of {where}: {', '.join(known)}")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return Problem(origin, f"{value} is not a whole number", "a whole number such as 5038")
    if kind in ("float_parsing", "float_type"):
        return Problem(origin, f"{value} is not a number", "a number such as 10 or 0.5")
    if kind in ("bool_parsing", "bool_type"):
        return Problem(origin, f"{value} is not true or false", "true or false")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return Problem(origin, f"{value} is out of range", _bound(ctx))
    if kind == "literal_error":
        return Problem(origin, f"{value} is not one of the choices", f"one of {ctx.get('expected', '?')}")
    if kind in ("time_parsing", "time_type"):
        return Problem(origin, f"{value} is not a time of day", '"HH:MM" such as "09:00" or "18:30"')
    if kind == "string_pattern_mismatch":
        return Problem(
            origin, f"{value} is not in the expected form", f"text matching {ctx.get('pattern', '?')}"
        )
    if kind in ("string_too_short", "string_too_long"):
        limits = f"{ctx.get('min_length', 0)} to {ctx.get('max_length', '…')} characters"
        return Problem(origin, f"{value} has the wrong length", limits)
    if kind == "string_type":
        return Problem(origin, f"{value} is not acceptable text", 'text in quotes, e.g. "pbx1"')
    if kind in ("tuple_type", "list_type"):
        return Problem(origin, f"{value} is not a list", "a list such as [0, 1, 2, 3, 4]")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return Problem(origin, f"{value} is not a table", f"a TOML table [{dotted(loc)}] with keys")
    if kind == "missing":
        return Problem(origin, "is required", "a value")
    if kind == "value_error":
        cause = ctx.get("error")
        text = str(cause) if cause is not None else str(error.get("msg", "")).removeprefix("Value error, ")
        return Problem(origin, mask_url(text), _valid_for(loc))
    # Anything else: the message without pydantic's prefixes (never its URL).
    text = str(error.get("msg", "invalid value")).removeprefix("Input should be ")
    return Problem(origin, f"{value}: {text}", "")


def _valid_for(loc: Loc) -> str:
    name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if name == "timezone":
        return 'an IANA time zone such as "Europe/Moscow" or "Asia/Yekaterinburg"'
    if name == "currency":
        return 'an ISO 4217 code such as "RUB", "USD", "EUR"'
    if name == "trusted_proxies":
        return 'addresses or networks such as "127.0.0.1" or "10.0.0.0/8"'
    return ""


def translate(
    err: ValidationError, origins: Origins, root: type[BaseModel], *, limit: int | None = None
) -> list[Problem]:
    """The errors of a failed validation, in a stable order (the first ``limit`` of them)."""
    return [translate_one(e, origins, root) for e in err.errors(include_url=False)[:limit]]
