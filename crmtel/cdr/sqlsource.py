"""A SQL CDR table, read-only: FreePBX's ``asteriskcdrdb.cdr`` in MariaDB/MySQL (aiomysql), or a PostgreSQL
table written by ``cdr_pgsql``/``cdr_adaptive_odbc`` (asyncpg), both through SQLAlchemy's async engine.

The columns are found by name at the first read, so any of the usual layouts works: ``calldate`` with
``duration``/``billsec`` (FreePBX, cdr_mysql), or ``start``/``answer``/``end`` (cdr_pgsql, adaptive ODBC);
``linkedid``, ``sequence``, ``recordingfile``, ``cnam`` and ``did`` when they are there. Times without a zone
are the PBX's local time. Sessions are read-only on the server side too, and a bad row is skipped and logged.

Text columns are cut to ``MAX_FIELD`` characters by the server and sent as bytes, so a huge field never
reaches crmtel whole and text that is not UTF-8 (cp1251 in a latin1 table, as old Russian FreePBX
installations have it) is read as cp1251 instead of failing the whole query. A row whose times cannot be true
(a clock in 2099) is skipped alone; calls reusing a Linkedid are kept apart by their times.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import bindparam, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crmtel.cdr.models import CdrRow, CdrSourceUnavailable, CdrSpec
from crmtel.cdr.rows import CALL_SPAN, MAX_FIELD, decode_text, ended_within, time_problem
from crmtel.cdr.times import leg_times, offset_swing, parse_naive

log = logging.getLogger(__name__)
_IN_BATCH = 500
_LOG_BAD = 20
# The columns crmtel reads as text (cut by the server, sent as bytes); the others are times and numbers.
_TEXT_COLUMNS = (
    "clid",
    "src",
    "dst",
    "dcontext",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "disposition",
    "accountcode",
    "uniqueid",
    "userfield",
    "peeraccount",
    "linkedid",
    "recordingfile",
    "cnam",
    "did",
)
_OTHER_COLUMNS = ("calldate", "start", "answer", "end", "duration", "billsec", "sequence")


def _local(value: object) -> datetime | None:
    """A CDR time column as the driver gives it (a datetime, naive unless the column has a zone, or text)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return parse_naive(_text(value)[:19])


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return decode_text(bytes(value))[0][:MAX_FIELD]
    return str(value)[:MAX_FIELD]


def _int(value: object) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value)
    return int(str(value).strip().split(".", 1)[0])


# cdr_adaptive_odbc stores the disposition as a number when the column is numeric (ast_cdr_disposition).
_DISPOSITIONS = {0: "NO ANSWER", 1: "NO ANSWER", 2: "FAILED", 4: "BUSY", 8: "ANSWERED", 16: "CONGESTION"}


def _disposition(value: object) -> str:
    text_value = _text(value).strip().upper()
    if text_value.isdigit():
        return _DISPOSITIONS.get(int(text_value), text_value)
    return text_value


class SqlCdrSource:
    """One PBX's CDR table through a read-only SQLAlchemy async engine."""

    def __init__(self, spec: CdrSpec, zone: tzinfo) -> None:
        self.spec = spec
        self.zone = zone
        self.skipped = 0
        # A SQL read is whole or fails: nothing is ever left half-read.
        self.incomplete = False
        self._columns: frozenset[str] | None = None
        self._engine: AsyncEngine | None = None

    def describe(self) -> str:
        """Where the CDRs come from (no password)."""
        return self.spec.describe()

    def _connect(self) -> AsyncEngine:
        if self._engine is not None:
            return self._engine
        options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 0}
        if self.spec.kind == "postgresql":
            options["connect_args"] = {"server_settings": {"default_transaction_read_only": "on"}}
        engine = create_async_engine(self.spec.target, **options)
        if self.spec.kind == "mysql":

            @event.listens_for(engine.sync_engine, "connect")
            def _read_only(dbapi_connection: Any, _record: Any) -> None:
                # crmtel never writes the PBX's table: the server refuses it even if the grant allowed it.
                cursor = dbapi_connection.cursor()
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                cursor.close()

        self._engine = engine
        return engine

    async def close(self) -> None:
        """Close the connection pool."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def _query(
        self, sql: str, params: Mapping[str, Any], expanding: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        statement = text(sql)
        for name in expanding:
            statement = statement.bindparams(bindparam(name, expanding=True))
        try:
            async with self._connect().connect() as conn:
                result = await conn.execute(statement, dict(params))
                return [dict(row) for row in result.mappings().all()]
        except (SQLAlchemyError, OSError) as err:
            reason = getattr(err, "orig", None) or err
            raise CdrSourceUnavailable(f"cdr {self.describe()}: {reason}") from err

    async def _layout(self) -> frozenset[str]:
        if self._columns is None:
            try:
                async with self._connect().connect() as conn:
                    result = await conn.execute(text(f"SELECT * FROM {self.spec.table} WHERE 1 = 0"))
                    self._columns = frozenset(str(key).lower() for key in result.keys())  # noqa: SIM118
            except (SQLAlchemyError, OSError) as err:
                raise CdrSourceUnavailable(
                    f"cdr {self.describe()}: {getattr(err, 'orig', None) or err}"
                ) from err
            if "calldate" not in self._columns and "start" not in self._columns:
                raise CdrSourceUnavailable(f"cdr {self.describe()}: table has neither calldate nor start")
        return self._columns

    def _time_column(self, columns: frozenset[str]) -> str:
        return "calldate" if "calldate" in columns else self._quote("start")

    def _quote(self, column: str) -> str:
        return f'"{column}"' if self.spec.kind == "postgresql" else f"`{column}`"

    def _select(self, columns: frozenset[str]) -> str:
        """The columns crmtel reads, text ones cut to MAX_FIELD by the server and sent as bytes."""
        parts: list[str] = []
        for column in _TEXT_COLUMNS:
            if column not in columns:
                continue
            quoted = self._quote(column)
            if self.spec.kind == "postgresql":
                parts.append(f"convert_to(left(CAST({quoted} AS text), {MAX_FIELD}), 'UTF8') AS {quoted}")
            else:
                parts.append(f"CAST(LEFT({quoted}, {MAX_FIELD}) AS BINARY) AS {quoted}")
        parts.extend(self._quote(column) for column in _OTHER_COLUMNS if column in columns)
        return ", ".join(parts)

    async def legs(self, since: datetime, until: datetime | None = None) -> list[CdrRow]:
        """Every leg of the calls that ended in ``[since, until)``.

        The table's times are naive local times, which across a DST change are not in the order of the instants
        they name: the query's bounds are widened by the zone's offset change near them, and the legs are then
        kept by their true start, so a call across the change (02:50 CEST to 02:05 CET) is read like any other.
        """
        columns = await self._layout()
        when = self._time_column(columns)
        # A leg's start is before its call's end: look back one call span for the calls ending in the period.
        lo = since - CALL_SPAN
        params: dict[str, Any] = {"lo": self._local_from(lo)}
        where = f"{when} >= :lo"
        if until is not None:
            params["hi"] = self._local_until(until)
            where += f" AND {when} < :hi"
        rows = [
            r
            for r in self._convert(
                await self._query(
                    f"SELECT {self._select(columns)} FROM {self.spec.table} WHERE {where}", params
                )
            )
            if r.start >= lo and (until is None or r.start < until)
        ]
        if "linkedid" not in columns:
            return [r for r in rows if r.end >= since - CALL_SPAN]
        return ended_within(rows, since, until)

    async def legs_of(self, linkedids: Collection[str], since: datetime) -> list[CdrRow]:
        """The legs of these calls (Linkedids), started after ``since`` minus one call span."""
        columns = await self._layout()
        wanted = sorted(set(linkedids))
        if not wanted:
            return []
        if "linkedid" not in columns:
            return await self.legs(since, None)
        when = self._time_column(columns)
        lo = since - CALL_SPAN
        out: list[CdrRow] = []
        for i in range(0, len(wanted), _IN_BATCH):
            rows = await self._query(
                f"SELECT {self._select(columns)} FROM {self.spec.table} WHERE linkedid IN :ids AND {when} >= :lo",
                {"ids": wanted[i : i + _IN_BATCH], "lo": self._local_from(lo)},
                expanding=("ids",),
            )
            out.extend(r for r in self._convert(rows) if r.start >= lo)
        return out

    def _local(self, value: datetime) -> datetime:
        # The table holds PBX-local times without a zone: compare like with like.
        return value.astimezone(self.zone).replace(tzinfo=None)

    def _local_from(self, value: datetime) -> datetime:
        """A naive local lower bound below the local reading of every instant from ``value`` on."""
        return self._local(value) - offset_swing(self.zone, value)

    def _local_until(self, value: datetime) -> datetime:
        """A naive local upper bound above the local reading of every instant before ``value``."""
        return self._local(value) + offset_swing(self.zone, value)

    def _convert(self, rows: Sequence[Mapping[str, Any]]) -> list[CdrRow]:
        out: list[CdrRow] = []
        bad = 0
        now = datetime.now(UTC)
        for raw in rows:
            try:
                row = self._row({k.lower(): v for k, v in raw.items()})
                problem = time_problem(row, now)
                if problem is not None:
                    raise ValueError(problem)
                out.append(row)
            except (ValueError, TypeError, KeyError, OverflowError) as err:
                bad += 1
                if bad <= _LOG_BAD:
                    log.warning(
                        "cdr %s: row skipped (%s): uniqueid %.40r",
                        self.describe(),
                        err,
                        _text(raw.get("uniqueid")),
                    )
        if bad:
            self.skipped += bad
            log.warning("cdr %s: %d bad row(s) skipped", self.describe(), bad)
        return out

    def _row(self, r: Mapping[str, Any]) -> CdrRow:
        duration, billsec = _int(r.get("duration")), _int(r.get("billsec"))
        if duration < 0 or billsec < 0 or billsec > duration + 1:
            raise ValueError(f"duration {duration} / billsec {billsec}")
        uniqueid = _text(r.get("uniqueid"))
        linkedid = _text(r.get("linkedid"))
        if not (linkedid or uniqueid):
            raise ValueError("no uniqueid or linkedid")
        start, answer, end = leg_times(
            _local(r.get("start")) or _local(r.get("calldate")),
            _local(r.get("answer")),
            _local(r.get("end")),
            self.zone,
            uniqueid=uniqueid or linkedid,
            duration=duration,
            billsec=billsec,
        )
        if start is None:
            raise ValueError("no start time")
        derived: set[str] = set()
        if end is None:
            end = start + timedelta(seconds=duration)
            derived.add("end")
        if answer is None and billsec > 0 and "answer" not in r:
            answer = end - timedelta(seconds=billsec)
            derived.add("answer")
        sequence = r.get("sequence")
        return CdrRow(
            linkedid=linkedid or uniqueid,
            uniqueid=uniqueid,
            channel=_text(r.get("channel")),
            dstchannel=_text(r.get("dstchannel")),
            src=_text(r.get("src")),
            dst=_text(r.get("dst")),
            clid=_text(r.get("clid")),
            lastapp=_text(r.get("lastapp")),
            lastdata=_text(r.get("lastdata")),
            start=start,
            answer=answer,
            end=end,
            duration=duration,
            billsec=billsec,
            disposition=_disposition(r.get("disposition")),
            dcontext=_text(r.get("dcontext")),
            accountcode=_text(r.get("accountcode")),
            userfield=_text(r.get("userfield")),
            peeraccount=_text(r.get("peeraccount")),
            sequence=_int(sequence) if sequence not in (None, "") else None,
            recordingfile=_text(r.get("recordingfile")) or None,
            cnam=_text(r.get("cnam")) or None,
            did=_text(r.get("did")) or None,
            has_linkedid=bool(linkedid),
            derived=frozenset(derived),
        )
