"""Managers: extensions, roles, argon2 passwords."""

from __future__ import annotations

from crmtel.domain import Category, Role
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository


async def test_password_is_hashed_and_verified(db: Database) -> None:
    """Login works with the right password only, and the stored value is an argon2 hash."""
    repo = ManagerRepository(db)
    await repo.save(login="anna", name="Анна Смирнова", extensions=("101",), password="s3cret")
    assert (await repo.authenticate("anna", "s3cret")) is not None
    assert (await repo.authenticate("anna", "wrong")) is None
    assert (await repo.authenticate("nobody", "s3cret")) is None


async def test_inactive_manager_cannot_log_in(db: Database) -> None:
    """A deactivated manager's password no longer opens a session."""
    repo = ManagerRepository(db)
    await repo.save(login="gleb", name="Gleb", password="pw", active=False)
    assert (await repo.authenticate("gleb", "pw")) is None


async def test_save_updates_by_login_and_replaces_extensions(db: Database) -> None:
    """Saving the same login twice updates one manager; extensions are replaced, found by extension."""
    repo = ManagerRepository(db)
    first = await repo.save(login="boris", name="Boris", extensions=("102",))
    second = await repo.save(
        login="boris",
        name="Boris Orlov",
        extensions=("102", "202"),
        role=Role.HEAD,
        speciality=Category.RETAIL,
    )
    assert first.id == second.id
    assert second.extensions == ("102", "202")
    assert second.role is Role.HEAD
    found = await repo.by_extension("202")
    assert found is not None
    assert found.name == "Boris Orlov"
    assert len(await repo.all()) == 1
