"""AMI wire format: bytes in, frozen messages out; actions out as bytes. No sockets here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message: headers in wire order, repeats kept."""

    headers: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of header `name` (case-insensitive), else `default`."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default
