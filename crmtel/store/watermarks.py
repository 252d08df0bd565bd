"""Per-PBX watermark of the CDR backfill: the moment up to which every call of that PBX is known."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from crmtel.store.db import Database
from crmtel.store.models import CdrWatermarkRow


class WatermarkRepository:
    """Reads and advances the watermarks (they only ever move forward)."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        """Move ``pbx``'s watermark to ``until`` unless it is already later."""
        async with self._db.session() as session:
            row = await session.get(CdrWatermarkRow, pbx)
            if row is None:
                session.add(CdrWatermarkRow(pbx=pbx, processed_until=until))
                return
            current = (
                row.processed_until if row.processed_until.tzinfo else row.processed_until.replace(tzinfo=UTC)
            )
            if until > current:
                row.processed_until = until
