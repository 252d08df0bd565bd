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
# More of the team's book, so lists, search and the pipeline look like a real team's (numbers not dialled by the
# simulator's recorded calls; each its own).
_MORE_CLIENTS = (
    _Client("ООО «Гранит-Строй»", "+79261230101", "gleb", Category.WHOLESALE, 730_000),
    _Client("ООО «Альфа Логистик»", "+79261230202", "boris", Category.RETAIL, 56_000),
    _Client("ИП Смирнова Е. В.", "+79261230303", "vera", Category.RETAIL, 23_400, "person"),
    _Client("ООО «ТехноСнаб»", "+79261230404", "gleb", Category.WHOLESALE, 315_000),
    _Client("ЗАО «Меридиан Пром»", "+79261230505", None, Category.WHOLESALE, 1_420_000),
    _Client("Алексей Морозов", "+79261230606", "anna", Category.RETAIL, 9_800, "person"),
    _Client("ООО «Эталон»", "+79261230707", "boris", Category.RETAIL, 74_500),
    _Client("ООО «Сервис Плюс»", "+79261230808", "anna", Category.RETAIL, 38_200),
    _Client("АО «Энергоресурс»", "+79261230909", "gleb", Category.WHOLESALE, 2_100_000),
    _Client("Наталья Фёдорова", "+79261231010", "vera", Category.RETAIL, 15_600, "person"),
    _Client("ООО «Орбита»", "+79261231111", None, Category.RETAIL, 47_000),
    _Client("ИП Григорьев А. С.", "+79261231212", "boris", Category.RETAIL, 31_900, "person"),
)
# Contact persons (name, position, number) of some clients, by client name.
_CONTACTS = {
    "ООО «Вектор»": ("Олег Никитин", "закупщик", "+79031230001"),
    "ООО «СтройМаркет»": ("Ирина Павлова", "главный бухгалтер", "+79031230002"),
    "АО «Северный ветер»": ("Юрий Захаров", "директор по снабжению", "+79031230003"),
    "ООО «Гранит-Строй»": ("Светлана Белова", "менеджер по закупкам", "+79031230004"),
    "АО «Энергоресурс»": ("Фёдор Киселёв", "начальник склада", "+79031230005"),
}
# INNs with valid check digits.
_INNS = {
    "ООО «Вектор»": "7739825971",
    "ООО «СтройМаркет»": "7791907480",
    "АО «Северный ветер»": "7733788762",
    "ООО «Ромашка»": "7723286019",
    "ООО «Гранит-Строй»": "7729040477",
    "АО «Энергоресурс»": "7796669729",
}
_LEADS = (
    ("Екатерина Орлова", "+79037654321", None, None),
    ("Мария Кузнецова", "+79031112233", "anna", "ООО «Цветы и сад»"),
    ("Андрей Лебедев", "+79034445566", "boris", "ООО «Лидер»"),
    ("Сергей Волков", "+79037778899", "vera", None),
    ("Роман Жуков", "+79035556677", "gleb", "ООО «Меридиан»"),
    ("Полина Сорокина", "+79035550011", "anna", None),
    ("Виктор Тарасов", "+79035550022", None, "ИП Тарасов"),
    ("Дарья Антонова", "+79035550033", "vera", "ООО «Уют»"),
)


def demo_book() -> tuple[tuple[str, str], ...]:
    """Who calls in the demo (number, the caller's name): every client — by its contact person where it has
    one — and every lead, so the simulator's calls spread over the whole book."""
    book: list[tuple[str, str]] = [(_CLIENTS[0].phone, "Иван Петров")]
    for client in _CLIENTS[1:] + _MORE_CLIENTS:
        book.append((client.phone, client.name))
        if client.name in _CONTACTS:
            contact_name, _position, number = _CONTACTS[client.name]
            book.append((number, contact_name))
    book.extend((phone, name) for name, phone, _manager, _company in _LEADS)
    return tuple(book)


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
    for client in _CLIENTS + _MORE_CLIENTS:
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
        if client.name in _CONTACTS:
            contact_name, _position, number = _CONTACTS[client.name]
            await parties.add_contact(contact_name, [number], [created.id])
        if client.name in _INNS:
            await parties.set_details(created.id, inn=_INNS[client.name])
        seeded.append(DemoParty(PartyKind.CLIENT, created.id, client.name, client.phone, client.manager))
    for name, phone, manager, company in _LEADS:
        lead = await parties.add_lead(
            NewLead(
                name=name,
                phones=(phone,),
                company=company,
                source="site",
                manager_id=ids[manager] if manager else None,
            )
        )
        seeded.append(DemoParty(PartyKind.LEAD, lead.id, name, phone, manager))
    return DemoPeople(ids, extensions, tuple(seeded))
