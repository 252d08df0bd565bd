"""API tokens in the record store: only a hash of each token is kept."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update

from crmtel.apitokens.models import ApiToken, Scope
from crmtel.store.db import Database
from crmtel.store.models import ApiTokenRow, ManagerRow

# Last use is written at most this often per token: a busy integration does not turn every read into a write.
LAST_USED_GRAIN = timedelta(seconds=60)
# A scope a later version dropped opens nothing.
_KNOWN = frozenset(s.value for s in Scope)


def _to_domain(row: ApiTokenRow, login: str) -> ApiToken:
    return ApiToken(
        id=row.id,
        manager_id=row.manager_id,
        manager_login=login,
        name=row.name,
        scopes=frozenset(Scope(s) for s in row.scopes.split() if s in _KNOWN),
        hint=row.hint,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class ApiTokenRepository:
    """Create, find, list and revoke tokens; every check reads the store, so a revocation holds on every node."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        token_hash: str,
        manager_id: int,
        name: str,
        scopes: frozenset[Scope],
        hint: str,
        now: datetime,
        expires_at: datetime | None,
    ) -> ApiToken:
        """Store a new token (its hash) and describe it."""
        async with self._db.session() as session:
            row = ApiTokenRow(
                token_hash=token_hash,
                manager_id=manager_id,
                name=name,
                scopes=" ".join(sorted(scopes)),
                hint=hint,
                created_at=now,
                expires_at=expires_at,
            )
            session.add(row)
            await session.flush()
            login = (
                await session.execute(select(ManagerRow.login).where(ManagerRow.id == manager_id))
            ).scalar_one()
            return _to_domain(row, login)

    async def use(self, token_hash: str, now: datetime) -> tuple[ApiToken, bool] | None:
        """The token with this hash and whether its manager is active; its last use becomes ``now``."""
        async with self._db.session() as session:
            found = (
                await session.execute(
                    select(ApiTokenRow, ManagerRow.login, ManagerRow.active)
                    .join(ManagerRow, ManagerRow.id == ApiTokenRow.manager_id)
                    .where(ApiTokenRow.token_hash == token_hash)
                )
            ).one_or_none()
            if found is None:
                return None
            row, login, active = found
            token = _to_domain(row, login)
            usable = row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
            if usable and (row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRAIN):
                await session.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == row.id).values(last_used_at=now)
                )
            return token, bool(active)

    async def list(self, manager_id: int | None = None) -> Sequence[ApiToken]:
        """Every token (or one manager's), oldest first."""
        async with self._db.session() as session:
            query = (
                select(ApiTokenRow, ManagerRow.login)
                .join(ManagerRow, ManagerRow.id == ApiTokenRow.manager_id)
                .order_by(ApiTokenRow.id)
            )
            if manager_id is not None:
                query = query.where(ApiTokenRow.manager_id == manager_id)
            return [_to_domain(row, login) for row, login in (await session.execute(query)).all()]

    async def revoke(self, token_id: int, now: datetime) -> bool:
        """Revoke a token (kept, marked, for the record); False if no such token or it was revoked already."""
        async with self._db.session() as session:
            result = await session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return bool(getattr(result, "rowcount", 0))
