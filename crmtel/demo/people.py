"""The demo's people: managers with phones 101-104, a head of sales, and clients matching the simulator's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crmtel.domain import Category, PartyKind, Role
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
    DemoLogin("boris", "Борис Орлов", "102", Role.MANAGER),
    DemoLogin("vera", "Вера Лебедева", "103", Role.MANAGER),
    DemoLogin("gleb", "Глеб Козлов", "104", Role.MANAGER),
    DemoLogin("head", "Ольга Руководитель", None, Role.HEAD),
)


@dataclass(frozen=True, slots=True)
class DemoParty:
    """A seeded client or lead the demo's history calls and deals refer to."""

    kind: PartyKind
    id: int
    name: str
    phone: str
    manager: str | None


@dataclass(frozen=True, slots=True)
class DemoPeople:
    """What ``seed_people`` created: manager ids by login, and the parties."""

    managers: dict[str, int]
    extensions: dict[str, str]
    parties: tuple[DemoParty, ...]


@dataclass(frozen=True, slots=True)
class _Client:
    name: str
    phone: str
    manager: str | None
    category: Category
    turnover: int
    kind: str = "company"
    notes: str | None = None


# The first three numbers are the ones the recorded calls come from; the rest give the history variety.
_CLIENTS = (
    _Client("ИП Петров", "+79161110001", "anna", Category.RETAIL, 42_000, "person", "Звонить после 10:00"),
    _Client("ООО «Вектор»", "+79162220002", None, Category.WHOLESALE, 250_000),
    _Client("Ольга Сидорова", "+79165550005", "vera", Category.RETAIL, 18_500, "person"),
    _Client("ООО «СтройМаркет»", "+79163330003", "gleb", Category.WHOLESALE, 480_000),
    _Client("АО «Северный ветер»", "+79164440004", "gleb", Category.WHOLESALE, 1_150_000),
    _Client("ООО «Ромашка»", "+79166660006", "boris", Category.RETAIL, 64_300),
    _Client("ИП Кузнецова", "+79167770007", "anna", Category.RETAIL, 27_900, "person"),
    _Client("ООО «Техносфера»", "+79168880008", "boris", Category.RETAIL, 91_000),
    _Client("Дмитрий Соколов", "+79169990009", "vera", Category.RETAIL, 12_400, "person"),
)
_LEADS = (
    ("Неизвестный абонент", "+79037654321", None),
    ("Мария Кузнецова", "+79031112233", "anna"),
    ("ООО «Лидер»", "+79034445566", "boris"),
    ("Сергей Волков", "+79037778899", "vera"),
    ("ООО «Меридиан»", "+79035556677", "gleb"),
)


def last_month(today: date) -> date:
    """The first day of the month before ``today``'s."""
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


async def seed_people(managers: ManagerRepository, parties: PartyRepository) -> DemoPeople | None:
    """Create the demo managers, clients and leads unless they exist (then None)."""
    if await managers.by_login("anna") is not None:
        return None
    ids: dict[str, int] = {}
    extensions: dict[str, str] = {}
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
        if person.extension:
            extensions[person.login] = person.extension
    month = last_month(datetime.now(UTC).date())
    seeded: list[DemoParty] = []
    for client in _CLIENTS:
        first = client is _CLIENTS[0]
        created = await parties.add_client(
            NewClient(
                name=client.name,
                kind=client.kind,
                category=client.category,
                manager_id=ids[client.manager] if client.manager else None,
                turnover=Decimal(client.turnover),
                turnover_month=month,
                notes=client.notes,
                # Ivan Petrov calls for ИП Петров as its contact person (the recorded calls' first caller).
                phones=() if first else (client.phone,),
            )
        )
        if first:
            await parties.add_contact("Иван Петров", [client.phone], [created.id])
        seeded.append(DemoParty(PartyKind.CLIENT, created.id, client.name, client.phone, client.manager))
    for name, phone, manager in _LEADS:
        lead = await parties.add_lead(
            NewLead(name=name, phones=(phone,), source="site", manager_id=ids[manager] if manager else None)
        )
        seeded.append(DemoParty(PartyKind.LEAD, lead.id, name, phone, manager))
    return DemoPeople(ids, extensions, tuple(seeded))
