"""Phone lookup in the record store: every match, best first, ties reported, duplicates detected."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from crmtel.domain import Category, PartyKind, Role
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import NewClient, NewLead, PartyRepository


async def test_any_written_form_finds_the_client(db: Database) -> None:
    """A client stored as '8 (916) 111-00-01' is found by every other way of writing the number."""
    parties = PartyRepository(db)
    created = await parties.add_client(NewClient(name="OOO Vector", phones=("8 (916) 111-00-01",)))
    for raw in ("+7 916 1110001", "79161110001", "9161110001"):
        result = await parties.lookup_raw(raw)
        assert result.best is not None
        assert (result.best.kind, result.best.id) == (PartyKind.CLIENT, created.id)


async def test_unknown_and_unparseable_numbers_match_nothing(db: Database) -> None:
    """Unknown numbers, extensions and garbage give an empty result, not an error."""
    parties = PartyRepository(db)
    await parties.add_client(NewClient(name="A", phones=("+79161110001",)))
    for raw in ("+79990000000", "101", "anonymous", "x" * 200):
        assert (await parties.lookup_raw(raw)).matches == ()


async def test_client_contact_with_manager_beats_client_beats_lead(db: Database) -> None:
    """Ranking: client with a personal manager > client without > lead; all are returned."""
    managers = ManagerRepository(db)
    anna = await managers.save(login="anna", name="Anna", extensions=("101",), role=Role.MANAGER)
    parties = PartyRepository(db)
    number = "+79161110001"
    lead = await parties.add_lead(NewLead(name="Lead L", phones=(number,)))
    plain = await parties.add_client(NewClient(name="Plain client", phones=(number,)))
    managed = await parties.add_client(
        NewClient(
            name="Managed client",
            manager_id=anna.id,
            category=Category.WHOLESALE,
            turnover=Decimal("150000"),
            turnover_month=date(2026, 10, 1),
        )
    )
    await parties.add_contact("Ivan Petrov", [number], [managed.id])
    result = await parties.lookup(number)
    assert [(m.kind, m.id) for m in result.matches] == [
        (PartyKind.CLIENT, managed.id),
        (PartyKind.CLIENT, plain.id),
        (PartyKind.LEAD, lead.id),
    ]
    best = result.best
    assert best is not None
    assert best.via_contact == "Ivan Petrov"
    assert best.manager_name == "Anna"
    assert best.manager_extensions == ("101",)
    assert best.manager_active
    assert best.turnover == Decimal("150000")
    assert best.turnover_month == date(2026, 10, 1)
    assert best.category is Category.WHOLESALE
    assert not result.tie


async def test_two_managed_clients_sharing_a_contact_are_a_reported_tie(db: Database) -> None:
    """One person acting for two clients with managers: both returned, flagged as a tie."""
    managers = ManagerRepository(db)
    anna = await managers.save(login="anna", name="Anna", extensions=("101",))
    boris = await managers.save(login="boris", name="Boris", extensions=("102",))
    parties = PartyRepository(db)
    a = await parties.add_client(NewClient(name="A", manager_id=anna.id))
    b = await parties.add_client(NewClient(name="B", manager_id=boris.id))
    await parties.add_contact("Shared Person", ["+79161110001"], [a.id, b.id])
    result = await parties.lookup("+79161110001")
    assert {m.id for m in result.matches} == {a.id, b.id}
    assert result.tie


async def test_duplicate_numbers_are_reported_on_insert(db: Database) -> None:
    """Creating a lead with a number a client already has reports that client as a duplicate."""
    parties = PartyRepository(db)
    client = await parties.add_client(NewClient(name="Client", phones=("89161110001",)))
    first = await parties.add_client(NewClient(name="Other", phones=("+79162220002",)))
    assert first.duplicates == ()
    lead = await parties.add_lead(NewLead(name="Lead", phones=("+7 916 111-00-01", "garbage")))
    assert [(d.kind, d.id) for d in lead.duplicates] == [(PartyKind.CLIENT, client.id)]


async def test_client_found_directly_and_via_contact_is_listed_once(db: Database) -> None:
    """A client reachable through its own number and a contact's is one match, not two."""
    parties = PartyRepository(db)
    c = await parties.add_client(NewClient(name="C", phones=("+79161110001",)))
    await parties.add_contact("P", ["+79161110001"], [c.id])
    result = await parties.lookup("+79161110001")
    assert len(result.matches) == 1
    assert result.matches[0].via_contact is None
