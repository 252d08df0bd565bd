"""A CDR leg as crmtel reads it from any source, and the CDR source of a PBX as configured."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from crmtel.errors import ConfigError, CrmtelError

CdrKind = Literal["csv", "mysql", "postgresql"]
_SQL_SCHEMES = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+aiomysql": "mysql",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+asyncpg": "postgresql",
}
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63})?$")


class CdrSourceUnavailable(CrmtelError):
    """The CDR source cannot be read right now (file permissions, database down, bad credentials)."""


@dataclass(frozen=True, slots=True)
class CdrRow:
    """One CDR leg (one party A talking to one party B), times in UTC.

    ``linkedid`` is the call's Linkedid; sources without that column (``cdr_csv`` without
    ``newcdrcolumns``) give the leg's ``uniqueid`` and ``has_linkedid`` False, and the legs are paired up
    later (see :func:`crmtel.cdr.calls.group_calls`). Times and lengths are as the source wrote them (whole
    seconds, truncated, in every usual layout): :mod:`crmtel.cdr.spans` says which instants they stand for.
    """

    linkedid: str
    uniqueid: str
    channel: str
    dstchannel: str
    src: str
    dst: str
    clid: str
    lastapp: str
    lastdata: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    dcontext: str = ""
    accountcode: str = ""
    userfield: str = ""
    peeraccount: str = ""
    sequence: int | None = None
    recordingfile: str | None = None
    cnam: str | None = None
    did: str | None = None
    has_linkedid: bool = True
    # The times the source has no column for, worked out from the others ("end": start + duration, "answer":
    # end - billsec): they span what their parts span (``crmtel.cdr.spans``).
    derived: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CdrSpec:
    """Where a PBX's CDRs are: ``csv:/var/log/asterisk/cdr-csv/Master.csv``, ``mysql://…``, ``postgresql://…``."""

    kind: CdrKind
    # The Master.csv path, or the database URL as SQLAlchemy takes it (async driver filled in).
    target: str
    table: str = "cdr"

    @classmethod
    def parse(cls, text: str, table: str = "cdr") -> CdrSpec:
        """Read a ``cdr`` setting; a ConfigError names what is wrong with it."""
        value = text.strip()
        scheme, sep, rest = value.partition(":")
        if not sep or not rest:
            raise ConfigError(f"cdr source {text!r}: expected csv:PATH, mysql://… or postgresql://…")
        if not _TABLE.match(table):
            raise ConfigError(f"cdr table {table!r} is not a plain table name")
        scheme = scheme.lower()
        if scheme == "csv":
            path = rest.removeprefix("//") if rest.startswith("///") else rest
            if not path.startswith("/"):
                raise ConfigError(f"cdr source {text!r}: the Master.csv path must be absolute")
            return cls("csv", path, table)
        kind = _SQL_SCHEMES.get(scheme)
        if kind is None or not rest.startswith("//"):
            raise ConfigError(f"cdr source {text!r}: unknown kind {scheme!r} (csv, mysql, postgresql)")
        driver = "mysql+aiomysql" if kind == "mysql" else "postgresql+asyncpg"
        return cls("mysql" if kind == "mysql" else "postgresql", f"{driver}:{rest}", table)

    def describe(self) -> str:
        """The source for logs and messages, without any password."""
        if self.kind == "csv":
            return f"csv:{self.target}"
        head, _, tail = self.target.partition("://")
        if "@" in tail:
            credentials, _, host = tail.rpartition("@")
            user = credentials.split(":", 1)[0]
            tail = f"{user}:***@{host}"
        return f"{self.kind}://{tail}" if head else self.target
