"""data: re-index clients and leads whose names carry invisible format characters (zero-width space, soft hyphen,
joiners, BOM)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 16:00:00

Since the search folds Unicode format characters (category Cf) out of names and queries
(``crmtel.crm.search.visible``), ``Ива\u200bнова`` is indexed as ``иванова``. Parties stored before were indexed
with the character inside: their terms are the split halves (``ива``, ``нова``) and their sort key keeps it, so
typing ``Иванова`` did not find them and they sorted apart. This step finds every client and lead whose indexed
text (name, lead's company, e-mail, a contact person's name or e-mail) holds such a character and computes its
terms and sort key again with the application's own functions (``crmtel.crm.search``). The stored texts are
left as they were. Only the parties concerned are re-indexed; the others are read once, in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# The application's own folding, so a re-indexed party reads exactly as one written today.
from crmtel.crm.search import PartyText, name_key, terms, visible

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000

# Lightweight table shapes as of this revision (never the ORM models: they follow the newest schema).
_clients = sa.table(
    "clients",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("email", sa.String),
    sa.column("inn", sa.String),
    sa.column("name_key", sa.String),
)
_leads = sa.table(
    "leads",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("company", sa.String),
    sa.column("email", sa.String),
    sa.column("name_key", sa.String),
)
_contacts = sa.table(
    "contacts", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("email", sa.String)
)
_links = sa.table("client_contacts", sa.column("client_id", sa.Integer), sa.column("contact_id", sa.Integer))
_phones = sa.table(
    "phones",
    sa.column("e164", sa.String),
    sa.column("client_id", sa.Integer),
    sa.column("lead_id", sa.Integer),
    sa.column("contact_id", sa.Integer),
)
_terms = sa.table(
    "party_terms",
    sa.column("kind", sa.String),
    sa.column("party_id", sa.Integer),
    sa.column("term", sa.String),
    sa.column("name_key", sa.String),
)


def upgrade() -> None:
    bind = op.get_bind()
    clients = _marked(bind, _clients, ("name", "email"))
    contacts = _marked(bind, _contacts, ("name", "email"))
    for start in range(0, len(contacts), BATCH):
        chunk = contacts[start : start + BATCH]
        clients.extend(
            r[0] for r in bind.execute(sa.select(_links.c.client_id).where(_links.c.contact_id.in_(chunk)))
        )
    leads = _marked(bind, _leads, ("name", "company", "email"))
    _reindex(bind, "c", sorted(set(clients)))
    _reindex(bind, "l", sorted(set(leads)))


def downgrade() -> None:
    # The old index was a defect, not a state worth restoring: the re-indexed rows stay as they are.
    pass


def _marked(bind: sa.Connection, table: sa.TableClause, columns: Sequence[str]) -> list[int]:
    """The ids of the rows whose given text columns hold a format character, read in keyset batches."""
    found: list[int] = []
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, *(table.c[name] for name in columns))
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return found
        for row in rows:
            if any(text and visible(text) != text for text in row[1:]):
                found.append(row[0])
        last = rows[-1][0]


def _reindex(bind: sa.Connection, kind: str, ids: Sequence[int]) -> None:
    """Terms and sort key of these clients (c) or leads (l), computed as the application does."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        texts = _client_texts(bind, chunk) if kind == "c" else _lead_texts(bind, chunk)
        bind.execute(sa.delete(_terms).where(_terms.c.kind == kind, _terms.c.party_id.in_(chunk)))
        rows = [
            {"kind": kind, "party_id": pid, "term": term, "name_key": name_key(text.name)}
            for pid, text in texts.items()
            for term in sorted(terms(text))
        ]
        if rows:
            bind.execute(sa.insert(_terms), rows)
        core = _clients if kind == "c" else _leads
        bind.execute(
            sa.update(core).where(core.c.id == sa.bindparam("pid")).values(name_key=sa.bindparam("key")),
            [{"pid": pid, "key": name_key(text.name)} for pid, text in texts.items()],
        )


def _by(rows: Iterable[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for key, value in rows:
        out.setdefault(key, []).append(value)
    return out


def _client_texts(bind: sa.Connection, ids: list[int]) -> dict[int, PartyText]:
    phones = _by(
        bind.execute(sa.select(_phones.c.client_id, _phones.c.e164).where(_phones.c.client_id.in_(ids)))
    )
    links = bind.execute(
        sa.select(_links.c.client_id, _contacts.c.id, _contacts.c.name, _contacts.c.email)
        .join(_contacts, _contacts.c.id == _links.c.contact_id)
        .where(_links.c.client_id.in_(ids))
    ).all()
    contacts = _by((cid, (name, email)) for cid, _, name, email in links)
    of_contact = _by((contact_id, cid) for cid, contact_id, _, _ in links)
    if of_contact:
        for contact_id, e164 in bind.execute(
            sa.select(_phones.c.contact_id, _phones.c.e164).where(_phones.c.contact_id.in_(list(of_contact)))
        ):
            for cid in of_contact[contact_id]:
                phones.setdefault(cid, []).append(e164)
    return {
        cid: PartyText(
            name=name,
            email=email,
            inn=inn,
            phones=tuple(phones.get(cid, ())),
            contact_names=tuple(n for n, _ in contacts.get(cid, ())),
            contact_emails=tuple(e for _, e in contacts.get(cid, ()) if e),
        )
        for cid, name, email, inn in bind.execute(
            sa.select(_clients.c.id, _clients.c.name, _clients.c.email, _clients.c.inn).where(
                _clients.c.id.in_(ids)
            )
        )
    }


def _lead_texts(bind: sa.Connection, ids: list[int]) -> dict[int, PartyText]:
    phones = _by(bind.execute(sa.select(_phones.c.lead_id, _phones.c.e164).where(_phones.c.lead_id.in_(ids))))
    return {
        lid: PartyText(name=name, company=company, email=email, phones=tuple(phones.get(lid, ())))
        for lid, name, company, email in bind.execute(
            sa.select(_leads.c.id, _leads.c.name, _leads.c.company, _leads.c.email).where(
                _leads.c.id.in_(ids)
            )
        )
    }
