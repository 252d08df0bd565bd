"""Managers' browser-phone credentials (sip_credentials): read, and replaced by an endpoint sync."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select

from crmtel.store.db import Database
from crmtel.store.models import SipCredentialRow
from crmtel.webphone.models import SipCredential


def _domain(row: SipCredentialRow) -> SipCredential:
    return SipCredential(row.manager_id, row.device, row.realm, row.ha1)


class SipCredentialRepository:
    """The credentials over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_manager(self, manager_id: int) -> SipCredential | None:
        """This manager's credential (None: not drawn yet, or dropped since their sessions ended)."""
        async with self._db.session() as session:
            row = await session.get(SipCredentialRow, manager_id)
            return _domain(row) if row is not None else None

    async def all(self) -> dict[int, SipCredential]:
        """Every credential, by manager id."""
        async with self._db.session() as session:
            rows = (await session.execute(select(SipCredentialRow))).scalars().all()
            return {r.manager_id: _domain(r) for r in rows}

    async def apply(self, new: Sequence[SipCredential], dropped: Sequence[int]) -> None:
        """Store the newly drawn credentials (replacing the managers' old ones) and drop the others, at once."""
        gone = {*dropped, *(c.manager_id for c in new)}
        async with self._db.session() as session:
            if gone:
                await session.execute(delete(SipCredentialRow).where(SipCredentialRow.manager_id.in_(gone)))
                # A device freed by one manager may be drawn for another in the same sync.
                devices = [c.device for c in new]
                if devices:
                    await session.execute(
                        delete(SipCredentialRow).where(SipCredentialRow.device.in_(devices))
                    )
            now = datetime.now(UTC)
            session.add_all(
                SipCredentialRow(
                    manager_id=c.manager_id, device=c.device, realm=c.realm, ha1=c.ha1, created_at=now
                )
                for c in new
            )
