"""What a committed transaction changed that a ringing card shows, so the card cache forgets exactly that.

Every statement crmtel runs passes ``after_execute``: writes to the tables a card is built from are noted on
the transaction's connection; once the transaction has committed, ``Database.session`` hands the change to
whoever listens (the card cache, the cluster's invalidation channel). A call row names its numbers and its
party (a card shows a party's last calls); a write to any CRM table (a client, lead, contact, phone, deal,
manager, note, a merge) forgets every card, as it may move a number to another party.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Delete, Insert, Update, UpdateBase
from sqlalchemy.sql.elements import TextClause

# Tables no card is built from (written often: forgetting every card on each would make the cache useless).
UNSEEN_TABLES = frozenset(
    {
        "web_sessions",
        "call_queue_visits",
        "call_queue_offers",
        "pbx_leases",
        "cdr_watermarks",
        "audit_log",
        "connector_events",
        "connector_deliveries",
        "connector_calls",
        "connector_tokens",
        "dial_attempts",
        "tasks",
        "alembic_version",
        "card_epoch",
        "callback_digits",
    }
)
# Columns of ``calls`` a card does not show: setting only these leaves every card as it was. ``number_key`` and
# ``callback_at`` are the report's stored callbacks, recomputed by (almost) every write of calls.
UNSEEN_CALL_COLUMNS = frozenset(
    {"result", "result_by", "result_at", "live_state", "number_key", "callback_at"}
)
# More numbers than this in one transaction (an import, a backfill): forget every card instead.
MAX_NUMBERS = 1000
_DML = ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "REPLACE")
_KEY = "crmtel.store_change"


@dataclass(frozen=True, slots=True)
class StoreChange:
    """Cards to forget: those of these numbers and parties, or every card."""

    numbers: frozenset[str] = frozenset()
    parties: frozenset[tuple[str, int]] = frozenset()
    everything: bool = False
    # The card epoch the transaction moved to (``Database.number_changes``): lets a cluster node see a change
    # that was committed but never announced to it.
    epoch: int | None = None

    def __bool__(self) -> bool:
        return self.everything or bool(self.numbers) or bool(self.parties)

    def to_json(self) -> str:
        """The change as JSON (the cluster's invalidation channel)."""
        body: dict[str, object] = (
            {"all": True}
            if self.everything
            else {"n": sorted(self.numbers), "p": sorted([kind, pid] for kind, pid in self.parties)}
        )
        if self.epoch is not None:
            body["e"] = self.epoch
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes) -> StoreChange:
        """What ``to_json`` wrote; anything unreadable means every card (never keep a card that may be stale)."""
        try:
            body = json.loads(data)
            epoch = int(body["e"]) if body.get("e") is not None else None
            if body.get("all"):
                return cls(everything=True, epoch=epoch)
            numbers = frozenset(str(n) for n in body["n"])
            parties = frozenset((str(kind), int(pid)) for kind, pid in body["p"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls(everything=True)
        return cls(numbers, parties, epoch=epoch)


@dataclass(slots=True)
class _Pending:
    numbers: set[str] = field(default_factory=set)
    parties: set[tuple[str, int]] = field(default_factory=set)
    everything: bool = False

    def add_call_row(self, row: Mapping[str, Any]) -> None:
        if "caller_number" not in row and "dialled" not in row:
            self.everything = True
            return
        if "ended_at" in row and row["ended_at"] is None:
            return  # a live call's row: a card lists ended calls only, so none changes until it ends
        for key in ("caller_number", "dialled"):
            if row.get(key):
                self.numbers.add(str(row[key]))
        kind, pid = row.get("party_kind"), row.get("party_id")
        if kind is not None and pid is not None:
            self.parties.add((str(kind), int(pid)))
        if len(self.numbers) > MAX_NUMBERS:
            self.everything = True

    def change(self) -> StoreChange:
        if self.everything:
            return StoreChange(everything=True)
        return StoreChange(frozenset(self.numbers), frozenset(self.parties))


def _rows(multiparams: Sequence[Any], params: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
    for item in multiparams:
        if isinstance(item, Mapping):
            rows.append(item)
        elif isinstance(item, Sequence) and not isinstance(item, str | bytes):
            rows.extend(r for r in item if isinstance(r, Mapping))
    if params:
        rows.append(params)
    return rows


def _set_columns(statement: Update) -> set[str] | None:
    values = getattr(statement, "_values", None)
    if not values:
        return None
    return {str(getattr(col, "key", col)) for col in values}


def note_statement(
    pending: _Pending, statement: Any, multiparams: Sequence[Any], params: Mapping[str, Any] | None
) -> None:
    """Add what one executed statement writes to the transaction's pending change."""
    if isinstance(statement, TextClause | str):
        # SQL written by hand (exec_driver_sql, text()): which rows it touches is unknown.
        sql = statement.text if isinstance(statement, TextClause) else statement
        if sql.lstrip().upper().startswith(_DML):
            pending.everything = True
        return
    if not isinstance(statement, UpdateBase):
        return
    table = getattr(statement.table, "name", None)
    if table in UNSEEN_TABLES:
        return
    if table != "calls":
        pending.everything = True
        return
    if isinstance(statement, Insert):
        rows = _rows(multiparams, params)
        if not rows:
            pending.everything = True
        for row in rows:
            pending.add_call_row(row)
    elif isinstance(statement, Update):
        columns = _set_columns(statement)
        if columns is None or not columns <= UNSEEN_CALL_COLUMNS:
            pending.everything = True
    elif isinstance(statement, Delete):
        pending.everything = True


def _after_execute(
    conn: Connection,
    statement: Any,
    multiparams: Sequence[Any],
    params: Mapping[str, Any],
    _options: Any,
    _result: Any,
) -> None:
    pending = conn.info.get(_KEY)
    if pending is None:
        pending = conn.info[_KEY] = _Pending()
    note_statement(pending, statement, multiparams, params)


def _forget(conn: Connection) -> None:
    # An invalidated connection (cancelled mid-statement) has no info to clear: reading it would reconnect,
    # which SQLAlchemy refuses inside the rollback that ends it. Its pending change is dropped with it.
    if conn.invalidated or conn.closed:
        return
    conn.info.pop(_KEY, None)


def watch(engine: Engine) -> None:
    """Note on each connection what its statements write (read back by ``take`` after the commit)."""
    event.listen(engine, "after_execute", _after_execute)
    # A transaction's own change starts empty, and a rolled-back one is dropped.
    event.listen(engine, "begin", _forget)
    event.listen(engine, "rollback", _forget)


class Pending(Protocol):
    """A transaction's change so far."""

    def change(self) -> StoreChange:
        """What it wrote that cards show."""
        ...


def pending(conn: AsyncConnection) -> Pending:
    """The change of the connection's transaction, kept up to date until it ends (read it after the commit)."""
    info = conn.sync_connection.info if conn.sync_connection is not None else {}
    found = info.get(_KEY)
    if found is None:
        found = info[_KEY] = _Pending()
    return cast(Pending, found)
