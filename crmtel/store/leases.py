"""PBX leases of a crmtel cluster: the leader node of each PBX and the fencing epoch its writes carry."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.store.db import Database
from crmtel.store.models import PbxLeaseRow


class LeaseRepository:
    """Takes over a PBX's lease (a new epoch) and reads the epochs writes are fenced by (PostgreSQL only)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def take_over(self, pbx: str, node: str) -> int:
        """Make ``node`` the leader of ``pbx`` with the next epoch; waits for writes of the old epoch to end."""
        insert = postgresql.insert(PbxLeaseRow).values(pbx=pbx, epoch=1, node=node, since=datetime.now(UTC))
        statement = insert.on_conflict_do_update(
            index_elements=[PbxLeaseRow.pbx],
            set_={
                "epoch": PbxLeaseRow.epoch + 1,
                "node": insert.excluded.node,
                "since": insert.excluded.since,
            },
        ).returning(PbxLeaseRow.epoch)
        async with self._db.session() as session:
            return int((await session.execute(statement)).scalar_one())

    async def leaders(self) -> dict[str, tuple[str, int]]:
        """Every PBX's leader node and epoch."""
        async with self._db.session() as session:
            rows = (await session.execute(select(PbxLeaseRow))).scalars().all()
        return {row.pbx: (row.node, row.epoch) for row in rows}


async def epochs_in(session: AsyncSession, pbxes: Collection[str]) -> dict[str, int]:
    """The current epochs of ``pbxes``, share-locked until the transaction ends.

    The lock is what makes fencing exact: a take-over (an UPDATE of the row) waits until this transaction has
    committed, and every later transaction of the old leader reads the new epoch.
    """
    if not pbxes:
        return {}
    statement = select(PbxLeaseRow.pbx, PbxLeaseRow.epoch).where(PbxLeaseRow.pbx.in_(sorted(pbxes)))
    rows = (await session.execute(statement.with_for_update(read=True))).all()
    return {pbx: int(epoch) for pbx, epoch in rows}
