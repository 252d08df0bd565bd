"""Demo data matching the built-in AMI simulator's numbers, so `crmtel demo` shows real call cards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crmtel.domain import Category, Role
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, NewLead, PartyRepository

DEMO_PASSWORD = "demo"


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """A login the demo prints for the newcomer."""

    login: str
    name: str
    extension: str | None
    role: Role


DEMO_LOGINS = (
    DemoLogin("anna", "Анна Смирнова", "101", Role.MANAGER),
    DemoLogin("boris", "Boris Orlov", "102", Role.MANAGER),
    DemoLogin("vera", "Vera Lebedeva", "103", Role.MANAGER),
    DemoLogin("gleb", "Gleb Kozlov", "104", Role.MANAGER),
    DemoLogin("head", "Head of Sales", None, Role.HEAD),
)


def _last_month(today: date) -> date:
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


async def seed(managers: ManagerRepository, parties: PartyRepository) -> bool:
    """Create the demo managers and clients unless they exist; True when something was created."""
    if await managers.by_login("anna") is not None:
        return False
    ids: dict[str, int] = {}
    for person in DEMO_LOGINS:
        saved = await managers.save(
            login=person.login,
            name=person.name,
            extensions=(person.extension,) if person.extension else (),
            role=person.role,
            speciality=Category.WHOLESALE if person.login == "gleb" else Category.RETAIL,
            password=DEMO_PASSWORD,
        )
        ids[person.login] = saved.id
    month = _last_month(datetime.now(UTC).date())
    petrov = await parties.add_client(
        NewClient(
            name="ИП Петров",
            kind="person",
            category=Category.RETAIL,
            manager_id=ids["anna"],
            turnover=Decimal("42000"),
            turnover_month=month,
            notes="Prefers calls after 10:00",
        )
    )
    await parties.add_contact("Ivan Petrov", ["+79161110001"], [petrov.id])
    await parties.add_client(
        NewClient(
            name="OOO Vector",
            category=Category.WHOLESALE,
            turnover=Decimal("250000"),
            turnover_month=month,
            phones=("+79162220002",),
        )
    )
    await parties.add_client(
        NewClient(
            name="Olga Sidorova",
            kind="person",
            category=Category.RETAIL,
            manager_id=ids["vera"],
            turnover=Decimal("18500"),
            turnover_month=month,
            phones=("+79165550005",),
        )
    )
    await parties.add_lead(NewLead(name="Unknown Caller", phones=("+79037654321",), source="site"))
    return True
