"""The call record as the rest of crmtel sees it: ONE field table for its row, its JSON and the cluster codec.

Every field of ``CallRecord`` is in ``FIELDS`` once, with its kind; the store's row (``to_row``/``from_row``),
the JSON a record travels as between nodes (``to_json``/``from_json``) and the public JSON of ``crmtel calls
list`` are all made from it, so a new field is added in one place (a test fails while a field is missing).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from crmtel.calls.tracker import visits
from crmtel.domain import CallRecord, Direction, MissedReason, Outcome, PartyKind
from crmtel.timestamps import assume_utc, iso_instant

Kind = Literal["text", "int", "seconds", "time", "strings", "enum", "extra", "visits"]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the record: how it is kept in a row and in JSON."""

    name: str
    kind: Kind
    # The enum of an ``enum`` field.
    enum: type[enum.StrEnum] | None = None
    # A column of the ``calls`` table of the same name (extras and queue waits live elsewhere).
    column: bool = True
    # Shown in the public JSON of ``calls list`` / the API as it is.
    public: bool = True


FIELDS: tuple[Field, ...] = (
    Field("pbx", "text"),
    Field("linkedid", "text"),
    Field("direction", "enum", Direction),
    Field("caller_number", "text"),
    Field("caller_name", "text"),
    Field("dialled", "text"),
    Field("started_at", "time"),
    Field("rang", "strings"),
    Field("answered_by", "text"),
    Field("queue", "text"),
    Field("outcome", "enum", Outcome),
    Field("missed_reason", "enum", MissedReason),
    Field("answered_at", "time", public=False),
    Field("ended_at", "time", public=False),
    Field("ring_seconds", "seconds"),
    Field("talk_seconds", "seconds"),
    Field("recording_file", "text"),
    Field("recording_url", "text"),
    Field("route_kind", "text"),
    Field("route_target", "text"),
    Field("route_reason", "text"),
    Field("party_kind", "enum", PartyKind, public=False),
    Field("party_id", "int", public=False),
    Field("party_name", "text", public=False),
    Field("manager_id", "int", public=False),
    Field("originate_id", "text", public=False),
    Field("extra", "extra", column=False, public=False),
    Field("queue_visits", "visits", column=False, public=False),
    Field("answered_on", "text"),
    Field("transferred_to", "text"),
)
COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.column)


def party_number(record: CallRecord) -> str | None:
    """The outside party's E.164 number (the caller inbound, the dialled number outbound), for CRM lookups."""
    return record.extra.get("party_number")


# -- the store's row ------------------------------------------------------------------------------------
def _enum_or_none(kind: type[enum.StrEnum], value: Any) -> Any:
    # A value this version does not know (a newer node wrote it) reads as unknown, never as an error.
    try:
        return kind(value)
    except ValueError:
        return None


def _row_writer(f: Field) -> Callable[[Any], Any] | None:
    if f.kind == "enum":
        return lambda v: None if v is None else v.value
    if f.kind == "seconds":
        return lambda v: round(v, 2)
    if f.kind == "strings":
        return list
    return None


def _row_reader(f: Field) -> Callable[[Any], Any] | None:
    if f.kind == "enum":
        kind = f.enum
        assert kind is not None
        return lambda v: None if v is None else _enum_or_none(kind, v)
    if f.kind == "time":
        return lambda v: None if v is None else assume_utc(v)
    if f.kind == "seconds":
        return lambda v: float(v) if isinstance(v, (int, float, Decimal)) else 0.0
    if f.kind == "strings":
        return lambda v: () if v is None else tuple(str(x) for x in v)
    return None


# Built once from the table: (field, converter or None for "as it is"); rows are written on every call event.
_TO_ROW = tuple((f.name, _row_writer(f)) for f in FIELDS if f.column)
_FROM_ROW = tuple((f.name, _row_reader(f)) for f in FIELDS if f.column)


def to_row(record: CallRecord) -> dict[str, Any]:
    """The ``calls`` column values of a record (its queue waits are rows of their own)."""
    out: dict[str, Any] = {}
    for name, write in _TO_ROW:
        value = getattr(record, name)
        out[name] = value if write is None else write(value)
    return out


def from_row(values: Mapping[str, Any]) -> CallRecord:
    """The record of a ``calls`` row's column values (without its queue waits)."""
    out: dict[str, Any] = {}
    for name, read in _FROM_ROW:
        value = values.get(name)
        out[name] = value if read is None else read(value)
    out["direction"] = out["direction"] or Direction.INBOUND
    out["started_at"] = out["started_at"] or datetime.fromtimestamp(0, UTC)
    return CallRecord(**out)


# -- JSON (between nodes, exact) ---------------------------------------------------------------------
def _json_value(f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.kind == "enum":
        return value.value
    if f.kind == "time":
        return iso_instant(value)
    if f.kind == "strings":
        return list(value)
    if f.kind == "extra":
        return dict(value)
    if f.kind == "visits":
        return visits.encode(value)
    return value


def to_json(record: CallRecord) -> dict[str, Any]:
    """Every field of the record as JSON values (times with their offset, reasons and kinds as codes)."""
    return {f.name: _json_value(f, getattr(record, f.name)) for f in FIELDS}


_STRICT: dict[Kind, Callable[[Field, Any], Any]] = {
    "text": lambda f, v: str(v),
    "int": lambda f, v: int(v),
    "seconds": lambda f, v: float(v),
    "time": lambda f, v: assume_utc(datetime.fromisoformat(str(v))),
    "strings": lambda f, v: tuple(str(x) for x in v),
    "enum": lambda f, v: f.enum(v) if f.enum is not None else v,
    "extra": lambda f, v: {str(k): str(x) for k, x in dict(v).items()},
    "visits": lambda f, v: visits.decode(v),
}


def from_json(data: Mapping[str, Any]) -> CallRecord:
    """The record ``to_json`` wrote; ValueError when a field is missing or malformed."""
    out: dict[str, Any] = {}
    try:
        for f in FIELDS:
            value = data.get(f.name)
            if value is None:
                if f.name in ("pbx", "linkedid", "direction", "started_at"):
                    raise ValueError(f"call record without {f.name}")
                if f.kind in ("text", "int", "time", "enum"):
                    out[f.name] = None
                continue
            out[f.name] = _STRICT[f.kind](f, value)
    except (TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"malformed call record: {err}") from err
    return CallRecord(**out)


def public_json(record: CallRecord) -> dict[str, Any]:
    """The fields of the record shown as they are in ``calls list --format json`` and the API."""
    out = {f.name: _json_value(f, getattr(record, f.name)) for f in FIELDS if f.public}
    for f in FIELDS:
        if f.public and f.kind == "seconds":
            out[f.name] = round(getattr(record, f.name), 2)
    return out


def table_problems() -> list[str]:
    """What keeps ``FIELDS`` from naming every field of ``CallRecord`` exactly once (empty: nothing)."""
    names = [f.name for f in FIELDS]
    wanted = {f.name for f in fields(CallRecord)}
    problems = [f"{name}: not in FIELDS" for name in sorted(wanted - set(names))]
    problems += [f"{name}: not a field of CallRecord" for name in sorted(set(names) - wanted)]
    problems += [f"{name}: twice in FIELDS" for name in sorted({n for n in names if names.count(n) > 1})]
    return problems
