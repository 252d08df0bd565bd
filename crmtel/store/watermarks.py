"""Per-PBX watermark of the CDR backfill: the moment up to which every call of that PBX is known."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.errors import WriteFenced
from crmtel.store.db import Database
from crmtel.store.models import CdrWatermarkRow


class Fence(Protocol):
    """A cluster's fencing (``crmtel.cluster.fence.EpochFence``): which PBXs this node may still write."""

    async def admit(self, session: AsyncSession, pbxes: Collection[str]) -> set[str]:
        """The PBXs of ``pbxes`` whose writes may go ahead in this transaction."""
        ...


class WatermarkRepository:
    """Reads and advances the watermarks (they only ever move forward).

    With a ``fence`` (a cluster) a watermark moves only in a transaction the PBX's lease still admits, the
    same check every call write passes: a node that lost the PBX cannot mark a period done whose calls it
    could not store.
    """

    def __init__(self, db: Database, fence: Fence | None = None) -> None:
        self._db = db
        self._fence = fence

    async def get(self, pbx: str) -> datetime | None:
        """Up to when ``pbx``'s calls are known, or None before the first backfill."""
        async with self._db.session() as session:
            value = (
                await session.execute(
                    select(CdrWatermarkRow.processed_until).where(CdrWatermarkRow.pbx == pbx)
                )
            ).scalar_one_or_none()
        if value is None:
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    async def advance(self, pbx: str, until: datetime) -> None:
        """Move ``pbx``'s watermark to ``until`` unless it is already later; WriteFenced if the lease is lost."""
        async with self._db.session() as session:
            if self._fence is not None and pbx not in await self._fence.admit(session, {pbx}):
                raise WriteFenced([pbx])
            row = await session.get(CdrWatermarkRow, pbx)
            if row is None:
                session.add(CdrWatermarkRow(pbx=pbx, processed_until=until))
                return
            current = (
                row.processed_until if row.processed_until.tzinfo else row.processed_until.replace(tzinfo=UTC)
            )
            if until > current:
                row.processed_until = until
