"""Who answered, by name, from memory: a popup never waits on the store for it, and a rename shows at once."""

from __future__ import annotations

import asyncio

from crmtel.domain import Manager
from crmtel.push.notifier import ManagerNames
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.fake_ami import wait_until


class HeldRepository(ManagerRepository):
    """The managers' store, whose reads wait until the test lets them go (a store that does not answer)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.gate = asyncio.Event()

    async def all(self) -> list[Manager]:
        await self.gate.wait()
        return await super().all()


async def test_a_manager_renamed_in_crmtel_is_named_so_on_the_next_answer(db: Database) -> None:
    """A rename committed through crmtel's store is the name of the next answered popup (it waited for the
    list's five-minute reload before)."""
    repo = ManagerRepository(db)
    await repo.save(login="anna", name="Анна Смирнова", extensions=("101",))
    async with ManagerNames(db, wait=5.0) as names:
        await names.load()
        assert await names.name_of("101") == "Анна Смирнова"
        await repo.save(login="anna", name="Анна Петрова", extensions=("101",))
        assert await names.name_of("101") == "Анна Петрова"


async def test_a_due_reload_waits_at_most_its_bound_and_the_names_follow(db: Database) -> None:
    """When the list is due for a reload and the store does not answer, the name asked for is served from
    memory within ``wait``; the reload lands once the store answers."""
    repo = ManagerRepository(db)
    await repo.save(login="anna", name="Анна Смирнова", extensions=("101",))
    async with ManagerNames(db, ttl=0.0, wait=0.01) as names:
        await names.load()
        held = HeldRepository(db)
        names._repo = held
        await repo.save(login="boris", name="Борис", extensions=("102",))
        assert await asyncio.wait_for(names.name_of("101"), 1.0) == "Анна Смирнова"
        assert await asyncio.wait_for(names.name_of("102"), 1.0) is None  # the reload is still held
        held.gate.set()

        async def boris_named() -> bool:
            return await names.name_of("102") == "Борис"

        await wait_until(boris_named)
