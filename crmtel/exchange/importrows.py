"""Rows of an import file checked and turned into typed records (pure: no database, no files)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Generic, TypeVar

from crmtel.domain import Category, LeadStatus, Role
from crmtel.exchange.csvio import BadFile, RawTable, header_key, unneutralise
from crmtel.managers.models import BadMobile, MobilePolicy
from crmtel.phones import PhoneKind, normalize

T = TypeVar("T")

# Column -> accepted header spellings (compared after ``header_key``).
MANAGER_COLUMNS: dict[str, tuple[str, ...]] = {
    "login": ("login", "username", "user"),
    "name": ("name", "full_name", "manager"),
    "extensions": ("extensions", "extension", "ext", "exts"),
    "role": ("role",),
    "speciality": ("speciality", "specialty"),
    "active": ("active", "enabled"),
    "password": ("password",),
    "mobile": ("mobile", "mobile_phone", "cell"),
}
CLIENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("external_id", "code", "id", "ext_id", "client_code"),
    "name": ("name", "client", "client_name"),
    "kind": ("kind", "type"),
    "category": ("category",),
    "manager": ("manager", "manager_login"),
    "turnover": ("turnover", "monthly_turnover"),
    "turnover_month": ("turnover_month", "month"),
    "stop_list": ("stop_list", "stoplist", "blocked"),
    "notes": ("notes", "note", "comment"),
    "phones": ("phones", "phone"),
    "contact_name": ("contact_name", "contact"),
    "contact_phones": ("contact_phones", "contact_phone"),
}
LEAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "lead", "lead_name"),
    "company": ("company",),
    "phones": ("phones", "phone"),
    "email": ("email", "e_mail"),
    "source": ("source",),
    "status": ("status",),
    "refusal_reason": ("refusal_reason", "reason"),
    "manager": ("manager", "manager_login"),
}
REQUIRED = {"managers": ("login", "name"), "clients": ("name",), "leads": ("name", "phones")}

# Longest text each column may hold (the store's column sizes; notes are capped to stay sane).
MAX_LEN = {
    "login": 100,
    "name": 300,
    "external_id": 100,
    "kind": 20,
    "notes": 20_000,
    "contact_name": 300,
    "company": 300,
    "email": 300,
    "source": 50,
    "refusal_reason": 2_000,
    "password": 1_000,
    "extension": 32,
}
MAX_PHONES = 20
MAX_TURNOVER = Decimal("99999999999999.99")
_SPLIT = re.compile(r"[,;|\n]")
_TRUE = frozenset({"1", "yes", "y", "true", "t", "да", "+", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "нет", "-", "off"})
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})(?:-(\d{1,2}))?$")
_MONTH_DOTTED = re.compile(r"^(?:(\d{1,2})\.)?(\d{1,2})\.(\d{4})$")
_EXTENSION = re.compile(r"^[0-9A-Za-z*#_+-]{1,32}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class RowError(ValueError):
    """One reason a row cannot be imported."""


@dataclass(frozen=True, slots=True)
class RowIssue:
    """An error or a warning about one line of the file (0 for the file as a whole)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


@dataclass(slots=True)
class Parsed(Generic[T]):
    """The good records of a file, and what was wrong with the rest."""

    records: list[T] = field(default_factory=list)
    errors: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    rows: int = 0


Phones = tuple[tuple[str, str], ...]  # (e164, raw)


@dataclass(frozen=True, slots=True)
class ManagerRecord:
    line: int
    login: str
    name: str
    extensions: tuple[str, ...]
    role: Role
    speciality: Category | None
    active: bool
    password: str | None
    # The mobile in E.164; None with ``has_mobile``: the cell is empty (no mobile); without: no such column (kept).
    mobile: str | None = None
    has_mobile: bool = False


@dataclass(frozen=True, slots=True)
class ContactRecord:
    line: int
    name: str
    phones: Phones


@dataclass(slots=True)
class ClientRecord:
    line: int
    key: tuple[str, ...]
    external_id: str | None
    name: str
    kind: str
    category: Category | None
    manager_id: int | None
    turnover: Decimal | None
    turnover_month: date | None
    stop_list: bool
    notes: str | None
    phones: Phones
    contacts: list[ContactRecord] = field(default_factory=list)

    def same_client(self, other: ClientRecord) -> bool:
        """Whether two rows describe the same client data (they may differ only by contact)."""
        fields = ("external_id", "name", "kind", "category", "manager_id", "turnover")
        more = ("turnover_month", "stop_list", "notes", "phones")
        return all(getattr(self, f) == getattr(other, f) for f in (*fields, *more))


@dataclass(frozen=True, slots=True)
class LeadRecord:
    line: int
    name: str
    company: str | None
    email: str | None
    source: str
    status: LeadStatus
    refusal_reason: str | None
    manager_id: int | None
    phones: Phones


def name_key(name: str) -> str:
    """A person's or company's name compared case- and spacing-insensitively."""
    return " ".join(name.split()).casefold()


class _Row:
    """One data row addressed by column name."""

    def __init__(self, line: int, cells: Sequence[str], index: Mapping[str, int]) -> None:
        self.line = line
        self._cells = cells
        self._index = index

    def text(self, column: str, *, limit_key: str | None = None) -> str | None:
        i = self._index.get(column)
        if i is None or i >= len(self._cells):
            return None
        value = unneutralise(self._cells[i].strip()).strip()
        limit = MAX_LEN.get(limit_key or column)
        if limit is not None and len(value) > limit:
            raise RowError(f"{column} is longer than {limit} characters")
        return value or None

    def has(self, column: str) -> bool:
        """Whether the file has this column at all."""
        return column in self._index

    def required(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            raise RowError(f"missing {column}")
        return value


def _columns(
    table: RawTable, kind: str, spec: Mapping[str, tuple[str, ...]]
) -> tuple[dict[str, int], list[RowIssue]]:
    alias = {a: col for col, names in spec.items() for a in names}
    index: dict[str, int] = {}
    warnings: list[RowIssue] = []
    for i, raw in enumerate(table.header):
        key = header_key(raw)
        if not key:
            continue
        col = alias.get(key)
        if col is None:
            warnings.append(RowIssue(1, f"unknown column {raw.strip()[:60]!r} ignored"))
        elif col in index:
            raise BadFile(f"line 1: column {col!r} appears twice in the header")
        else:
            index[col] = i
    missing = [c for c in REQUIRED[kind] if c not in index]
    if missing:
        raise BadFile(f"line 1: missing required column(s): {', '.join(missing)}")
    return index, warnings


def _parse_all(
    table: RawTable,
    kind: str,
    spec: Mapping[str, tuple[str, ...]],
    parse_row: Callable[[_Row], T],
) -> Parsed[T]:
    index, warnings = _columns(table, kind, spec)
    out: Parsed[T] = Parsed(warnings=warnings, rows=len(table.rows))
    width = len(table.header)
    for line, cells in table.rows:
        if len(cells) != width:
            out.errors.append(RowIssue(line, f"row has {len(cells)} cells, the header has {width}"))
            continue
        try:
            out.records.append(parse_row(_Row(line, cells, index)))
        except RowError as err:
            out.errors.append(RowIssue(line, str(err)))
    return out


def parse_phones(text: str | None, region: str, column: str = "phones") -> Phones:
    """Every number in a cell (separated by ``,`` ``;`` ``|`` or new lines) as unique E.164."""
    if not text:
        return ()
    seen: dict[str, str] = {}
    parts = [p.strip() for p in _SPLIT.split(text) if p.strip()]
    if len(parts) > MAX_PHONES:
        raise RowError(f"{column}: more than {MAX_PHONES} numbers")
    for part in parts:
        phone = normalize(part, region)
        if phone.kind is not PhoneKind.E164 or phone.e164 is None:
            raise RowError(f"{column}: unparseable phone {part[:40]!r}")
        seen.setdefault(phone.e164, part[:64])
    return tuple(seen.items())


def parse_bool(text: str | None, column: str, default: bool) -> bool:
    """yes/no, true/false, 1/0 (and да/нет); empty gives ``default``."""
    if text is None:
        return default
    value = text.casefold()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RowError(f"bad {column} {text[:20]!r} (use yes or no)")


def parse_turnover(text: str | None) -> Decimal | None:
    """A non-negative amount: ``1 234 567,89``, ``1,234,567.89`` and ``1234567.89`` all work."""
    if text is None:
        return None
    value = "".join(text.split()).replace("\u00a0", "").replace("'", "")
    if "," in value and "." in value:
        value = value.replace(",", "")
    elif value.count(",") == 1:
        value = value.replace(",", ".")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise RowError(f"bad turnover {text[:30]!r}") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_TURNOVER:
        raise RowError(f"bad turnover {text[:30]!r}")
    return amount.quantize(Decimal("0.01"))


def parse_month(text: str | None) -> date | None:
    """``YYYY-MM`` (also ``YYYY-MM-DD`` and ``MM.YYYY``) as the first day of that month."""
    if text is None:
        return None
    m = _MONTH.match(text)
    dotted = _MONTH_DOTTED.match(text) if m is None else None
    try:
        if m is not None:
            return date(int(m.group(1)), int(m.group(2)), 1)
        if dotted is not None:
            return date(int(dotted.group(3)), int(dotted.group(2)), 1)
    except ValueError:
        pass
    raise RowError(f"bad turnover_month {text[:30]!r} (use YYYY-MM)")


def _enum(enum_type: type[Category] | type[Role], text: str | None, column: str) -> str | None:
    if text is None:
        return None
    value = text.casefold().replace(" ", "_")
    allowed = [e.value for e in enum_type]
    if value not in allowed:
        raise RowError(f"bad {column} {text[:30]!r} (one of: {', '.join(allowed)})")
    return value


def _manager_id(row: _Row, logins: Mapping[str, int]) -> int | None:
    login = row.text("manager", limit_key="login")
    if login is None:
        return None
    found = logins.get(login.casefold())
    if found is None:
        raise RowError(f"unknown manager login {login!r}")
    return found


def parse_managers(
    table: RawTable,
    region: str = "RU",
    *,
    logins: dict[str, int] | None = None,
    extensions: dict[str, int] | None = None,
    mobiles: MobilePolicy | None = None,
) -> Parsed[ManagerRecord]:
    """Manager rows; duplicate logins or extensions inside the file are errors (``logins``/``extensions``:
    the first line of each in earlier batches of the same file, updated with this one's; ``mobiles``: what a
    mobile must be, by default a personal line the default click-to-call policy lets crmtel dial)."""
    policy = mobiles or MobilePolicy(region)

    def row_to_record(row: _Row) -> ManagerRecord:
        login = row.required("login")
        if any(c.isspace() for c in login):
            raise RowError(f"login {login!r} contains spaces")
        exts = tuple(
            dict.fromkeys(e.strip() for e in _SPLIT.split(row.text("extensions") or "") if e.strip())
        )
        for ext in exts:
            if not _EXTENSION.match(ext):
                raise RowError(f"bad extension {ext[:40]!r}")
        name = row.required("name")
        if len(name) > 200:
            raise RowError("name is longer than 200 characters")
        speciality = _enum(Category, row.text("speciality"), "speciality")
        try:
            mobile = policy.parse(row.text("mobile"), exts)
        except BadMobile as err:
            raise RowError(f"mobile: {err}") from err
        return ManagerRecord(
            line=row.line,
            login=login,
            name=name,
            extensions=exts,
            role=Role(_enum(Role, row.text("role"), "role") or Role.MANAGER.value),
            speciality=Category(speciality) if speciality else None,
            active=parse_bool(row.text("active"), "active", True),
            password=row.text("password"),
            mobile=mobile,
            has_mobile=row.has("mobile"),
        )

    parsed = _parse_all(table, "managers", MANAGER_COLUMNS, row_to_record)
    logins = {} if logins is None else logins
    extensions = {} if extensions is None else extensions
    kept: list[ManagerRecord] = []
    for rec in parsed.records:
        first = logins.setdefault(rec.login.casefold(), rec.line)
        clash = next((extensions[e] for e in rec.extensions if e in extensions), None)
        if first != rec.line:
            parsed.errors.append(RowIssue(rec.line, f"duplicate login {rec.login!r} (also on line {first})"))
        elif clash is not None:
            parsed.errors.append(RowIssue(rec.line, f"extension already given on line {clash}"))
        else:
            extensions.update((e, rec.line) for e in rec.extensions)
            kept.append(rec)
    parsed.records = kept
    parsed.errors.sort(key=lambda i: i.line)
    return parsed


def client_key(external_id: str | None, name: str, phones: Phones) -> tuple[str, ...]:
    """How a client is recognised on re-import: its external id, else its name and first number."""
    if external_id:
        return ("id", external_id)
    return ("name", name_key(name), phones[0][0] if phones else "")


def parse_clients(table: RawTable, logins: Mapping[str, int], region: str) -> Parsed[ClientRecord]:
    """Client rows; rows repeating a client with identical data add one more contact person each."""

    def row_to_record(row: _Row) -> ClientRecord:
        name = row.required("name")
        external_id = row.text("external_id")
        phones = parse_phones(row.text("phones"), region)
        category = _enum(Category, row.text("category"), "category")
        contact_name = row.text("contact_name")
        contact_phones = parse_phones(row.text("contact_phones"), region, "contact_phones")
        contacts: list[ContactRecord] = []
        if contact_name and not contact_phones:
            raise RowError("contact_name without contact_phones")
        if contact_phones and not contact_name:
            raise RowError("contact_phones without contact_name")
        if contact_name:
            contacts.append(ContactRecord(row.line, contact_name, contact_phones))
        kind = (row.text("kind") or "company").casefold()
        if kind not in {"company", "person"}:
            raise RowError(f"bad kind {kind[:20]!r} (company or person)")
        return ClientRecord(
            line=row.line,
            key=client_key(external_id, name, phones),
            external_id=external_id,
            name=name,
            kind=kind,
            category=Category(category) if category else None,
            manager_id=_manager_id(row, logins),
            turnover=parse_turnover(row.text("turnover")),
            turnover_month=parse_month(row.text("turnover_month")),
            stop_list=parse_bool(row.text("stop_list"), "stop_list", False),
            notes=row.text("notes"),
            phones=phones,
            contacts=contacts,
        )

    parsed = _parse_all(table, "clients", CLIENT_COLUMNS, row_to_record)
    by_key: dict[tuple[str, ...], ClientRecord] = {}
    for rec in parsed.records:
        first = by_key.get(rec.key)
        if first is None:
            by_key[rec.key] = rec
        elif first.same_client(rec):
            first.contacts.extend(rec.contacts)
        else:
            what = f"external_id {rec.external_id!r}" if rec.external_id else "name and first phone"
            parsed.errors.append(
                RowIssue(rec.line, f"duplicate client {what} (line {first.line}) with different data")
            )
    parsed.records = list(by_key.values())
    parsed.errors.sort(key=lambda i: i.line)
    return parsed


def parse_leads(table: RawTable, logins: Mapping[str, int], region: str) -> Parsed[LeadRecord]:
    """Lead rows; a phone on two rows of the file is a duplicate key (leads are keyed by phone)."""

    def row_to_record(row: _Row) -> LeadRecord:
        name = row.required("name")
        phones = parse_phones(row.text("phones"), region)
        if not phones:
            raise RowError("missing phones")
        email = row.text("email")
        if email is not None and not _EMAIL.match(email):
            raise RowError(f"bad email {email[:40]!r}")
        status_text = (row.text("status") or LeadStatus.NEW.value).casefold().replace(" ", "_")
        try:
            status = LeadStatus(status_text)
        except ValueError:
            allowed = ", ".join(s.value for s in LeadStatus)
            raise RowError(f"bad status {status_text[:30]!r} (one of: {allowed})") from None
        reason = row.text("refusal_reason")
        if status is LeadStatus.REFUSED and not reason:
            raise RowError("status refused needs a refusal_reason")
        return LeadRecord(
            line=row.line,
            name=name,
            company=row.text("company"),
            email=email,
            source=row.text("source") or "import",
            status=status,
            refusal_reason=reason,
            manager_id=_manager_id(row, logins),
            phones=phones,
        )

    parsed = _parse_all(table, "leads", LEAD_COLUMNS, row_to_record)
    seen: dict[str, int] = {}
    kept: list[LeadRecord] = []
    for rec in parsed.records:
        clash = next(((e, seen[e]) for e, _ in rec.phones if e in seen), None)
        if clash is not None:
            parsed.errors.append(RowIssue(rec.line, f"duplicate lead phone {clash[0]} (line {clash[1]})"))
            continue
        seen.update((e, rec.line) for e, _ in rec.phones)
        kept.append(rec)
    parsed.records = kept
    parsed.errors.sort(key=lambda i: i.line)
    return parsed
