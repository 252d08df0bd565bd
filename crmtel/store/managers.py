"""Managers (and heads of sales): their extensions, logins and passwords."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from crmtel.calls.owner import Staff
from crmtel.domain import Category, Manager, Role
from crmtel.store.db import Database
from crmtel.store.models import ExtensionRow, ManagerRow, SipCredentialRow, WebSessionRow

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verifying against this keeps a login for an unknown user as slow as one for a known user; made on
    # first use, not at import (an argon2 hash costs a tenth of a second every CLI start would pay).
    return _HASHER.hash("crmtel-no-such-user")


# Checks a password against a stored hash (None: no such user) without blocking the event loop.
Verify = Callable[[str | None, str], Awaitable[bool]]


async def verify_in_thread(password_hash: str | None, password: str) -> bool:
    """``verify_password`` in a worker thread."""
    return await asyncio.to_thread(verify_password, password_hash, password)


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches the stored hash (False for a missing or malformed hash)."""
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# What ``_to_domain`` reads of a manager's row; ``many`` selects only these columns (no ORM objects).
_COLUMNS = (
    ManagerRow.id,
    ManagerRow.name,
    ManagerRow.login,
    ManagerRow.role,
    ManagerRow.active,
    ManagerRow.speciality,
    ManagerRow.locale,
    ManagerRow.mobile,
)
_SPECIALITIES = frozenset(c.value for c in Category)


class _Fields(Protocol):
    """A manager's row as ``_to_domain`` reads it: an ORM object or a row of ``_COLUMNS``."""

    id: int
    name: str
    login: str
    role: str
    active: bool
    speciality: str | None
    locale: str | None
    mobile: str | None


async def _to_domain(session: AsyncSession, rows: Sequence[_Fields]) -> list[Manager]:
    if not rows:
        return []
    ext_rows = await session.execute(
        select(ExtensionRow.manager_id, ExtensionRow.extension)
        .where(ExtensionRow.manager_id.in_([r.id for r in rows]))
        .order_by(ExtensionRow.id)
    )
    exts: dict[int, list[str]] = {}
    for mid, ext in ext_rows:
        exts.setdefault(mid, []).append(ext)
    return [
        Manager(
            id=r.id,
            name=r.name,
            login=r.login,
            role=Role(r.role),
            active=r.active,
            speciality=Category(r.speciality) if r.speciality in _SPECIALITIES else None,
            extensions=tuple(exts.get(r.id, ())),
            locale=r.locale,
            mobile=r.mobile,
        )
        for r in rows
    ]


async def end_sessions(session: AsyncSession | AsyncConnection, manager_ids: Collection[int]) -> None:
    """Delete the login sessions of these managers in the caller's transaction (every node notices them gone).

    Their browser-phone credentials go with them: the next endpoint sync draws new ones, so what an ended
    session was given stops registering once the PBX has reloaded.
    """
    if manager_ids:
        await session.execute(delete(WebSessionRow).where(WebSessionRow.manager_id.in_(set(manager_ids))))
        await session.execute(
            delete(SipCredentialRow).where(SipCredentialRow.manager_id.in_(set(manager_ids)))
        )


async def staff_in(session: AsyncSession, extensions: Collection[str], logins: Collection[str]) -> Staff:
    """The owner rule's view of the team, read for just these extensions and logins (one batch of calls)."""
    by_extension: dict[str, int] = {}
    by_login: dict[str, int] = {}
    inactive: set[int] = set()
    wanted = sorted({e for e in extensions if e})
    for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500)):
        rows = await session.execute(
            select(ExtensionRow.extension, ManagerRow.id, ManagerRow.active)
            .join(ManagerRow, ManagerRow.id == ExtensionRow.manager_id)
            .where(ExtensionRow.extension.in_(chunk))
        )
        for extension, mid, active in rows.all():
            by_extension[extension] = mid
            if not active:
                inactive.add(mid)
    names = sorted({n for n in logins if n})
    if names:
        rows = await session.execute(
            select(ManagerRow.login, ManagerRow.id, ManagerRow.active).where(ManagerRow.login.in_(names))
        )
        for login, mid, active in rows.all():
            by_login[login] = mid
            if not active:
                inactive.add(mid)
    return Staff(by_extension, by_login, frozenset(inactive))


class ManagerRepository:
    """Managers over the record store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(
        self,
        *,
        login: str,
        name: str,
        extensions: Sequence[str] = (),
        role: Role = Role.MANAGER,
        active: bool = True,
        speciality: Category | None = None,
        password: str | None = None,
    ) -> Manager:
        """Create the manager with this login, or update it (extensions are replaced)."""
        async with self._db.session() as session:
            row = (
                await session.execute(select(ManagerRow).where(ManagerRow.login == login))
            ).scalar_one_or_none()
            if row is None:
                row = ManagerRow(login=login, created_at=datetime.now(UTC))
                session.add(row)
            was_head = row.role == Role.HEAD.value
            row.name = name
            row.role = role.value
            row.active = active
            row.speciality = speciality.value if speciality else None
            if password is not None:
                row.password_hash = hash_password(password)
            await session.flush()
            wanted = list(dict.fromkeys(extensions))
            had = set(
                (
                    await session.execute(
                        select(ExtensionRow.extension).where(ExtensionRow.manager_id == row.id)
                    )
                ).scalars()
            )
            # An extension given to this manager is taken from whoever had it: their pages must stop ringing.
            losers = set(
                (
                    await session.execute(
                        select(ExtensionRow.manager_id).where(
                            ExtensionRow.extension.in_(wanted), ExtensionRow.manager_id != row.id
                        )
                    )
                ).scalars()
            )
            ends_own = (
                password is not None
                or not active
                or not had <= set(wanted)
                or (was_head and role is not Role.HEAD)
            )
            await end_sessions(session, [*losers, *([row.id] if ends_own else [])])
            await session.execute(
                delete(ExtensionRow).where(
                    (ExtensionRow.manager_id == row.id) | ExtensionRow.extension.in_(wanted)
                )
            )
            await session.flush()
            session.add_all(ExtensionRow(manager_id=row.id, extension=e) for e in wanted)
            await session.flush()
            return (await _to_domain(session, [row]))[0]

    async def set_password(self, login: str, password: str) -> bool:
        """Give the manager with this login a new password and end their sessions; False if unknown."""
        password_hash = await asyncio.to_thread(hash_password, password)
        async with self._db.session() as session:
            manager_id = (
                await session.execute(select(ManagerRow.id).where(ManagerRow.login == login))
            ).scalar_one_or_none()
            if manager_id is None:
                return False
            await session.execute(
                update(ManagerRow).where(ManagerRow.id == manager_id).values(password_hash=password_hash)
            )
            await end_sessions(session, [manager_id])
            return True

    async def set_active(self, login: str, active: bool) -> bool:
        """Let the manager log in again, or not (their sessions end at once); False if unknown."""
        async with self._db.session() as session:
            manager_id = (
                await session.execute(select(ManagerRow.id).where(ManagerRow.login == login))
            ).scalar_one_or_none()
            if manager_id is None:
                return False
            await session.execute(update(ManagerRow).where(ManagerRow.id == manager_id).values(active=active))
            if not active:
                await end_sessions(session, [manager_id])
            return True

    async def set_locale(self, manager_id: int, locale: str | None) -> None:
        """Keep the language this person chose (None: follow their browser again)."""
        async with self._db.session() as session:
            await session.execute(update(ManagerRow).where(ManagerRow.id == manager_id).values(locale=locale))

    async def set_mobile(self, manager_id: int, mobile: str | None) -> None:
        """Keep this manager's mobile (E.164, already checked; None: no mobile)."""
        async with self._db.session() as session:
            await session.execute(update(ManagerRow).where(ManagerRow.id == manager_id).values(mobile=mobile))

    async def get(self, manager_id: int) -> Manager | None:
        """The manager with this id."""
        async with self._db.session() as session:
            row = await session.get(ManagerRow, manager_id)
            return (await _to_domain(session, [row]))[0] if row else None

    async def many(self, manager_ids: Sequence[int]) -> list[Manager]:
        """The managers with these ids (unknown ids are left out)."""
        if not manager_ids:
            return []
        # Columns, not ORM objects: every node's session watch asks for all its pages' managers twice a second.
        async with self._db.session() as session:
            rows = (await session.execute(select(*_COLUMNS).where(ManagerRow.id.in_(set(manager_ids))))).all()
            return await _to_domain(session, rows)

    async def by_login(self, login: str) -> Manager | None:
        """The manager with this login."""
        async with self._db.session() as session:
            rows = (
                (await session.execute(select(ManagerRow).where(ManagerRow.login == login))).scalars().all()
            )
            found = await _to_domain(session, rows)
            return found[0] if found else None

    async def by_extension(self, extension: str) -> Manager | None:
        """The manager whose phone answers on ``extension``."""
        async with self._db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(ManagerRow)
                        .join(ExtensionRow, ExtensionRow.manager_id == ManagerRow.id)
                        .where(ExtensionRow.extension == extension)
                    )
                )
                .scalars()
                .all()
            )
            found = await _to_domain(session, rows)
            return found[0] if found else None

    async def all(self) -> list[Manager]:
        """Every manager, by name."""
        async with self._db.session() as session:
            rows = (await session.execute(select(ManagerRow).order_by(ManagerRow.name))).scalars().all()
            return await _to_domain(session, rows)

    async def authenticate(
        self, login: str, password: str, *, verify: Verify | None = None
    ) -> Manager | None:
        """The active manager whose login and password match, else None.

        No transaction is open while the password is checked: argon2 is deliberately slow (~0.1 s, longer when
        logins queue for it), and a session held across it would hold a pooled connection idle in a
        transaction — under a burst of logins the pool starves (the cluster's idle-in-transaction timeout
        kills those sessions) and everything else waits for it.
        """
        async with self._db.session() as session:
            found = (
                await session.execute(
                    select(ManagerRow.id, ManagerRow.password_hash, ManagerRow.active).where(
                        ManagerRow.login == login
                    )
                )
            ).one_or_none()
        stored_hash = found.password_hash if found is not None else None
        # Off the event loop (websockets keep flowing during a login); ``verify`` may bound the queue.
        ok = await (verify or verify_in_thread)(stored_hash, password)
        if found is None or not ok or not found.active:
            return None
        manager = await self.get(found.id)
        return manager if manager is not None and manager.active else None
