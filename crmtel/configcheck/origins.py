"""Where each configuration value came from: the TOML file (and key), an environment variable, or the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "CRMTEL_"
ENV_DELIMITER = "__"

Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    """``("pbx", 0, "port")`` -> ``pbx[1].port`` (tables of a TOML array counted from 1, as people count)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += f".{part}" if out else part
    return out


def _flatten(data: Mapping[str, Any], prefix: Loc = ()) -> dict[Loc, None]:
    found: dict[Loc, None] = {}
    # Only values, not tables: a table in the file says nothing about the keys it leaves out.
    for key, value in data.items():
        loc = (*prefix, key)
        if isinstance(value, Mapping):
            found.update(_flatten(value, loc))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                found.update(_flatten(item, (*loc, index)))
        else:
            found[loc] = None
    return found


@dataclass(frozen=True)
class Origins:
    """Answers "where did the value at this location come from?" for the messages of a config check."""

    path: Path | None = None
    file_keys: frozenset[Loc] = frozenset()
    # Location -> the environment variable's name as it was spelt.
    env: Mapping[Loc, str] = field(default_factory=dict)
    overrides: Mapping[Loc, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        path: Path | None,
        data: Mapping[str, Any],
        environ: Mapping[str, str],
        overrides: Mapping[str, str] | None = None,
    ) -> Origins:
        """From the parsed file, the environment and the command-line overrides (``{key: "--option"}``)."""
        env: dict[Loc, str] = {}
        for name in environ:
            if name.upper().startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
                parts = name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
                env[tuple(parts)] = name
        return cls(
            path=path,
            file_keys=frozenset(_flatten(data)),
            env=env,
            overrides={(k,): v for k, v in (overrides or {}).items()},
        )

    def of(self, loc: Loc) -> str:
        """``--database-url``, ``environment CRMTEL_AMI__PORT``, ``/etc/crmtel/crmtel.toml, key ami.port``
        or ``default value of ami.port`` — the longest matching prefix wins, in the order crmtel applies them.
        """
        key = dotted(loc) or "(top level)"
        for end in range(len(loc), 0, -1):
            prefix = loc[:end]
            # A whole table given at once (CRMTEL_AMI='{...}', an override dict): name the key inside it too.
            inside = f", key {key}" if end < len(loc) else ""
            if prefix in self.overrides:
                return self.overrides[prefix] + inside
            named = tuple(p for p in prefix if isinstance(p, str))
            if len(named) == len(prefix) and named in self.env:
                return f"environment {self.env[named]}{inside}"
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.file_keys:
                return f"{self.path}, key {key}"
        return f"default value of {key}"
