"""Web login sessions in the record store, so a restart of crmtel logs nobody out."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, select

from crmtel.store.db import Database
from crmtel.store.models import WebSessionRow


class SessionRepository:
    """Session rows keyed by a hash of the token (the token itself never reaches the database)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, token_hash: str, manager_id: int, expires_at: datetime, now: datetime) -> None:
        """Store a new session and forget the ones expired at ``now``."""
        async with self._db.session() as session:
            await session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
            session.add(WebSessionRow(token_hash=token_hash, manager_id=manager_id, expires_at=expires_at))

    async def load(self, token_hash: str, now: datetime) -> tuple[int, datetime] | None:
        """The manager and expiry of a session that has not expired at ``now``."""
        async with self._db.session() as session:
            result = await session.execute(
                select(WebSessionRow.manager_id, WebSessionRow.expires_at).where(
                    WebSessionRow.token_hash == token_hash, WebSessionRow.expires_at > now
                )
            )
            row = result.one_or_none()
            if row is None:
                return None
            expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
            return int(row.manager_id), expires

    async def delete(self, token_hash: str) -> None:
        """End one session."""
        async with self._db.session() as session:
            await session.execute(delete(WebSessionRow).where(WebSessionRow.token_hash == token_hash))

    async def delete_manager(self, manager_id: int) -> None:
        """End every session of a manager."""
        async with self._db.session() as session:
            await session.execute(delete(WebSessionRow).where(WebSessionRow.manager_id == manager_id))

    async def alive(self, token_hashes: Collection[str], now: datetime) -> set[str]:
        """Which of these sessions still exist and have not expired at ``now`` (in batches of 500)."""
        found: set[str] = set()
        hashes = list(token_hashes)
        async with self._db.session() as session:
            for start in range(0, len(hashes), 500):
                result = await session.execute(
                    select(WebSessionRow.token_hash).where(
                        WebSessionRow.token_hash.in_(hashes[start : start + 500]),
                        WebSessionRow.expires_at > now,
                    )
                )
                found.update(result.scalars())
        return found
