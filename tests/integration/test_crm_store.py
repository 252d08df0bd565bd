"""The CRM's store: the list finds what Russian users type, edits are audited, merges and conversions move
everything, managers see only their own, shared and unassigned records, the timeline pages exactly."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from crmtel.crm.models import ContactInput, Kind, PartyChanges, PartyQuery, PhoneInput, Sort, Viewer
from crmtel.crm.search import parse_query
from crmtel.domain import Role
from crmtel.errors import NotFound
from crmtel.store.crm_deals import CrmDeals
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_merge import MergeRefused, PartyMerger
from crmtel.store.crm_parties import LeadConverted, PartyCards
from crmtel.store.crm_tasks import CrmTasks, NewTask
from crmtel.store.crm_terms import reindex_in
from crmtel.store.crm_timeline import TimelineCall, Timelines
from crmtel.store.db import Database, upgrade
from crmtel.store.deals import DealRepository, NewDeal
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import AuditRow, CallRow, ClientRow, PartyTermRow, PhoneRow, TaskRow
from crmtel.store.parties import NewClient, NewLead, PartyRepository
from crmtel.store.tasks import MissedCall, record_missed_in

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


async def _seed(db: Database) -> dict[str, int]:
    managers = ManagerRepository(db)
    anna = await managers.save(login="anna", name="Анна Смирнова", extensions=("101",))
    boris = await managers.save(login="boris", name="Борис Орлов", extensions=("102",))
    head = await managers.save(login="head", name="Ольга", role=Role.HEAD)
    parties = PartyRepository(db)
    petrov = await parties.add_client(
        NewClient(name="ИП Петров Пётр Ильич", phones=("8 (916) 777-00-07",), manager_id=anna.id)
    )
    romashka = await parties.add_client(
        NewClient(name="ООО «Ромашка»", phones=("+7 495 123-45-67",), manager_id=boris.id)
    )
    await parties.add_contact("Семёнова Алёна", ["+7 903 555 44 33"], [romashka.id])
    pool = await parties.add_client(NewClient(name="Общий клиент", phones=("+79030000001",)))
    lead = await parties.add_lead(
        NewLead(name="Мария Кузнецова", phones=("+79031112233",), company="АО «Гранит»", manager_id=anna.id)
    )
    return {
        "anna": anna.id,
        "boris": boris.id,
        "head": head.id,
        "petrov": petrov.id,
        "romashka": romashka.id,
        "pool": pool.id,
        "lead": lead.id,
    }


async def _terms_out_of_step(db: Database) -> tuple[int, int]:
    """How many search terms there are, and how many lack their party's creation time (the newest-first key)."""
    async with db.session() as session:
        row = (
            await session.execute(
                text(
                    "SELECT count(*), sum(CASE WHEN t.created_at IS NULL"
                    " OR t.created_at <> coalesce(c.created_at, l.created_at) THEN 1 ELSE 0 END)"
                    " FROM party_terms t"
                    " LEFT JOIN clients c ON t.kind = 'c' AND c.id = t.party_id"
                    " LEFT JOIN leads l ON t.kind = 'l' AND l.id = t.party_id"
                )
            )
        ).one()
    return int(row[0]), int(row[1] or 0)


async def _names(db: Database, q: str, viewer: Viewer, kind: Kind = Kind.CLIENT) -> list[str]:
    page = await PartyLists(db).page(PartyQuery(kind, tokens=parse_query(q)), viewer)
    return [i.name for i in page.items]


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("89167770007", "ИП Петров Пётр Ильич"),
        ("8 (916) 777-00-07", "ИП Петров Пётр Ильич"),
        ("+7 916 777 00 07", "ИП Петров Пётр Ильич"),
        ("7770007", "ИП Петров Пётр Ильич"),
        ("777-00-07", "ИП Петров Пётр Ильич"),
        ("0007", "ИП Петров Пётр Ильич"),
        ("ип", "ИП Петров Пётр Ильич"),
        ("Петр", "ИП Петров Пётр Ильич"),
        ("пётр ильич", "ИП Петров Пётр Ильич"),
        ("РОМАШ", "ООО «Ромашка»"),
        ("семенова", "ООО «Ромашка»"),
        ("903 555", "ООО «Ромашка»"),
    ],
)
async def test_the_client_list_finds_what_people_type(db: Database, typed: str, found: str) -> None:
    """Numbers in any spelling and partial digits, ё/е and case folded, contact persons' names and numbers."""
    ids = await _seed(db)
    assert found in await _names(db, typed, Viewer(ids["head"], head=True))


async def test_names_with_invisible_format_characters_are_found_by_their_spelling(db: Database) -> None:
    """A zero-width space or soft hyphen pasted into a name (or a query) does not split the word."""
    ids = await _seed(db)
    head = Viewer(ids["head"], head=True)
    parties = PartyRepository(db)
    await parties.add_client(NewClient(name="Ива\u200bнов Сергей", phones=("+79160000011",)))
    await parties.add_client(NewClient(name="Кузь\u00adмин Олег", phones=("+79160000012",)))
    assert await _names(db, "иванов", head) == ["Ива\u200bнов Сергей"]
    assert await _names(db, "Кузьмин", head) == ["Кузь\u00adмин Олег"]
    assert await _names(db, "кузь\u00adмин", head) == ["Кузь\u00adмин Олег"]
    assert await _names(db, "+7\u200b916 000-00-11", head) == ["Ива\u200bнов Сергей"]


async def test_a_lead_is_found_by_its_company_and_a_stranger_by_nothing(db: Database) -> None:
    """Leads by company; a query matching nothing finds nothing (not everything)."""
    ids = await _seed(db)
    head = Viewer(ids["head"], head=True)
    assert await _names(db, "гранит", head, Kind.LEAD) == ["Мария Кузнецова"]
    assert await _names(db, "несуществующий", head) == []
    assert await _names(db, "99999999", head) == []


async def test_a_manager_sees_own_shared_and_unassigned_clients_only(db: Database) -> None:
    """Anna sees her client and the unassigned one, not Boris's, until Boris's is shared with her."""
    ids = await _seed(db)
    anna = Viewer(ids["anna"], head=False)
    page = await PartyLists(db).page(PartyQuery(Kind.CLIENT), anna)
    assert sorted(i.name for i in page.items) == ["ИП Петров Пётр Ильич", "Общий клиент"]
    cards = PartyCards(db)
    assert await cards.get(Kind.CLIENT, ids["romashka"], anna) is None
    with pytest.raises(NotFound):
        await cards.edit(Kind.CLIENT, ids["romashka"], anna, PartyChanges(name="взлом"))
    await cards.share(Kind.CLIENT, ids["romashka"], Viewer(ids["boris"], head=False), [ids["anna"]])
    assert await cards.get(Kind.CLIENT, ids["romashka"], anna) is not None
    assert "ООО «Ромашка»" in await _names(db, "ромашка", anna)


async def test_a_deal_and_a_list_row_show_the_same_three_numbers_own_first_each_once(db: Database) -> None:
    """A client with two numbers of its own and contact persons with one of them again and two more: its deal
    and its list row show its own two, then the contacts' first new one — no number twice, three at most; a
    deal with the unassigned client shows Anna its number, one with nobody shows none."""
    ids = await _seed(db)
    parties = PartyRepository(db)
    client = await parties.add_client(
        NewClient(name="ООО «Стройка»", phones=("+79161110001", "+79161110002"), manager_id=ids["anna"])
    )
    await parties.add_contact("Иванов Иван", ["+79161110002", "+79161110003"], [client.id])
    await parties.add_contact("Сидорова Анна", ["+79161110004"], [client.id])
    deals = DealRepository(db)
    for party, title in ((client.id, "Стройка"), (ids["pool"], "Общий"), (None, "Ничья")):
        await deals.add(NewDeal(title=title, amount=Decimal(1), manager_id=ids["anna"], client_id=party))
    anna = Viewer(ids["anna"], head=False)
    found, _ = await CrmDeals(db).find(anna)
    shown = {d.title: [p.e164 for p in d.phones] for d in found}
    want = ["+79161110001", "+79161110002", "+79161110003"]
    assert shown == {"Стройка": want, "Общий": ["+79030000001"], "Ничья": []}
    (stroika,) = (d for d in found if d.title == "Стройка")
    assert [p.contact_id is not None for p in stroika.phones] == [False, False, True]
    (row,) = (await PartyLists(db).page(PartyQuery(Kind.CLIENT, tokens=parse_query("Стройка")), anna)).items
    assert list(row.phones) == want


async def test_an_edit_persists_with_its_audit_entry_and_reindexes(db: Database) -> None:
    """Name, e-mail, INN, numbers with kinds and contacts change; the audit says who changed what."""
    ids = await _seed(db)
    anna = Viewer(ids["anna"], head=False)
    result = await PartyCards(db).edit(
        Kind.CLIENT,
        ids["petrov"],
        anna,
        PartyChanges(
            name="ИП Петров П. И.",
            email="petrov@example.ru",
            inn="7707083893",
            turnover=Decimal("150000.50"),
            phones=(PhoneInput("+79167770007", "mobile"), PhoneInput("+74951112233", "work")),
            contacts=(
                ContactInput(None, "Иван Бухгалтер", "бухгалтер", None, (PhoneInput("+79035550001"),)),
            ),
        ),
    )
    card = result.card
    assert card.name == "ИП Петров П. И."
    assert [(p.e164, p.kind) for p in card.phones] == [("+79167770007", "mobile"), ("+74951112233", "work")]
    assert [c.name for c in card.contacts] == ["Иван Бухгалтер"]
    entry = card.audit[0]
    assert entry.manager_id == ids["anna"]
    assert entry.changes["name"] == ["ИП Петров Пётр Ильич", "ИП Петров П. И."]
    assert entry.changes["turnover"] == [None, "150000.50"]
    head = Viewer(ids["head"], head=True)
    assert await _names(db, "7707083893", head) == ["ИП Петров П. И."]
    assert await _names(db, "бухгалтер", head) == ["ИП Петров П. И."]
    assert await _names(db, "4951112233", head) == ["ИП Петров П. И."]
    # The old name's words are gone from the index.
    assert await _names(db, "ильич", head) == []
    total, stale = await _terms_out_of_step(db)
    assert total > 0
    assert stale == 0


async def _call(db: Database, linkedid: str, party: tuple[str, int], at: datetime) -> int:
    async with db.session() as session:
        row = CallRow(
            pbx="pbx1",
            linkedid=linkedid,
            direction="inbound",
            caller_number="+79167770007",
            started_at=at,
            ended_at=at + timedelta(minutes=1),
            rang=["101"],
            answered_by="101",
            outcome="answered",
            talk_seconds=50,
            party_kind=party[0],
            party_id=party[1],
        )
        session.add(row)
        await session.flush()
        return row.id


async def test_a_merge_moves_numbers_calls_deals_notes_and_tasks(db: Database) -> None:
    """Merging the unassigned client into Petrov leaves one record holding everything of both."""
    ids = await _seed(db)
    head = Viewer(ids["head"], head=True)
    await _call(db, "m1", ("client", ids["pool"]), T0)
    await DealRepository(db).add(
        NewDeal(title="Поставка", amount=Decimal(1000), manager_id=None, client_id=ids["pool"])
    )
    await PartyCards(db).add_note(Kind.CLIENT, ids["pool"], head, "позвонить в среду")
    async with db.session() as session:
        session.add(
            TaskRow(
                kind="callback",
                phone="+79030000001",
                client_id=ids["pool"],
                title="Перезвонить",
                status="open",
                due_at=T0,
                created_at=T0,
                updated_at=T0,
                source="planned",
                missed_count=0,
            )
        )
    with pytest.raises(MergeRefused):
        await PartyMerger(db).merge(Kind.CLIENT, ids["petrov"], Kind.CLIENT, ids["petrov"], head)
    moved = await PartyMerger(db).merge(Kind.CLIENT, ids["petrov"], Kind.CLIENT, ids["pool"], head)
    assert moved["calls"] == 1
    assert moved["deals"] == 1
    assert moved["notes"] == 1
    assert moved["tasks"] == 1
    assert moved["phones"] == 1
    cards = PartyCards(db)
    assert await cards.get(Kind.CLIENT, ids["pool"], head) is None
    card = await cards.get(Kind.CLIENT, ids["petrov"], head)
    assert card is not None
    assert {p.e164 for p in card.phones} == {"+79167770007", "+79030000001"}
    assert card.audit[0].action == "merge"
    page = await Timelines(db).page(Kind.CLIENT, ids["petrov"], head, owner=True)
    assert {type(i).__name__ for i in page.items} == {
        "TimelineCall",
        "TimelineDeal",
        "TimelineNote",
        "TimelineTask",
    }
    async with db.session() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(PartyTermRow)
            .where(PartyTermRow.kind == "c", PartyTermRow.party_id == ids["pool"])
        )
    assert left == 0
    assert (await _terms_out_of_step(db))[1] == 0


async def test_a_converted_lead_becomes_a_client_with_its_history(db: Database) -> None:
    """The lead's company names the client, the person becomes its contact, calls follow."""
    ids = await _seed(db)
    anna = Viewer(ids["anna"], head=False)
    await _call(db, "c1", ("lead", ids["lead"]), T0)
    client_id = await PartyMerger(db).convert(ids["lead"], anna)
    card = await PartyCards(db).get(Kind.CLIENT, client_id, anna)
    assert card is not None
    assert card.name == "АО «Гранит»"
    assert card.manager_id == ids["anna"]
    assert [c.name for c in card.contacts] == ["Мария Кузнецова"]
    assert card.contacts[0].phones[0].e164 == "+79031112233"
    lead = await PartyCards(db).get(Kind.LEAD, ids["lead"], anna)
    assert lead is not None
    assert lead.status == "converted"
    assert lead.client_id == client_id
    page = await Timelines(db).page(Kind.CLIENT, client_id, anna, owner=True)
    assert [type(i) for i in page.items] == [TimelineCall]
    assert (await _terms_out_of_step(db))[1] == 0
    with pytest.raises(MergeRefused):
        await PartyMerger(db).convert(ids["lead"], anna)


async def test_one_lead_converted_three_times_at_once_makes_one_client(db: Database) -> None:
    """Three conversions of the same lead at once: one client, the other two refused (the row is claimed)."""
    ids = await _seed(db)
    anna = Viewer(ids["anna"], head=False)
    async with db.session() as session:
        before = await session.scalar(select(func.count()).select_from(ClientRow))
    merger = PartyMerger(db)
    outcomes = await asyncio.gather(
        *(merger.convert(ids["lead"], anna) for _ in range(3)), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, int)]
    assert len(made) == 1, outcomes
    assert all(isinstance(o, MergeRefused) for o in outcomes if not isinstance(o, int)), outcomes
    async with db.session() as session:
        after = await session.scalar(select(func.count()).select_from(ClientRow))
    assert after == (before or 0) + 1


async def test_one_record_merged_three_times_at_once_is_merged_once(db: Database) -> None:
    """Three merges of the same client at once (and crossed merges): one succeeds with one audit entry, the
    others find the record gone; a lead merged into a client twice at once is refused the second time."""
    ids = await _seed(db)
    head = Viewer(ids["head"], head=True)
    merger = PartyMerger(db)
    outcomes = await asyncio.gather(
        *(merger.merge(Kind.CLIENT, ids["petrov"], Kind.CLIENT, ids["pool"], head) for _ in range(3)),
        return_exceptions=True,
    )
    assert len([o for o in outcomes if isinstance(o, dict)]) == 1, outcomes
    assert all(isinstance(o, NotFound) for o in outcomes if not isinstance(o, dict)), outcomes
    async with db.session() as session:
        merges = await session.scalar(
            select(func.count())
            .select_from(AuditRow)
            .where(
                AuditRow.entity == "client", AuditRow.entity_id == ids["petrov"], AuditRow.action == "merge"
            )
        )
    assert merges == 1
    crossed = await asyncio.gather(
        merger.merge(Kind.CLIENT, ids["petrov"], Kind.CLIENT, ids["romashka"], head),
        merger.merge(Kind.CLIENT, ids["romashka"], Kind.CLIENT, ids["petrov"], head),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in crossed) == ["NotFound", "dict"], crossed
    kept = ids["petrov"] if isinstance(crossed[0], dict) else ids["romashka"]
    leads = await asyncio.gather(
        *(merger.merge(Kind.CLIENT, kept, Kind.LEAD, ids["lead"], head) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in leads) == ["MergeRefused", "dict"], leads


async def test_the_timeline_pages_without_skipping_or_repeating(db: Database) -> None:
    """120 calls, many in the same second, read 50 at a time: every call once, newest first."""
    ids = await _seed(db)
    head = Viewer(ids["head"], head=True)
    made = [
        await _call(db, f"t{i}", ("client", ids["petrov"]), T0 + timedelta(seconds=i // 7))
        for i in range(120)
    ]
    seen: list[int] = []
    timelines = Timelines(db)
    page = await timelines.page(Kind.CLIENT, ids["petrov"], head, owner=True)
    seen += [i.id for i in page.items]
    while page.next is not None:
        page = await timelines.page(Kind.CLIENT, ids["petrov"], head, owner=True, after=page.next)
        seen += [i.id for i in page.items]
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))


async def test_list_pages_follow_the_cursor_in_order(db: Database) -> None:
    """By name and by newest, each page continues the last; the broad-word plan and the narrow one agree."""
    ids = await _seed(db)
    parties = PartyRepository(db)
    for i in range(30):
        await parties.add_client(NewClient(name=f"ООО «Тест {i:02d}»", phones=(f"+7916123{i:04d}",)))
    head = Viewer(ids["head"], head=True)
    lists = PartyLists(db)
    for sort in (Sort.NAME, Sort.NAME_DESC, Sort.CREATED_DESC):
        q = PartyQuery(Kind.CLIENT, sort=sort, limit=7)
        got: list[int] = []
        page = await lists.page(q, head)
        got += [i.id for i in page.items]
        while page.next is not None:
            page = await lists.page(replace(q, after=page.next), head)
            got += [i.id for i in page.items]
        assert len(got) == 33 == len(set(got))
    narrow = await lists.page(PartyQuery(Kind.CLIENT, tokens=parse_query("тест"), limit=100), head)
    assert len(narrow.items) == 30
    assert narrow.strategy == "terms"


async def test_upgrading_a_database_with_parties_indexes_them(database_url: str, tmp_path: object) -> None:
    """A database at the revision before the CRM's, with clients and leads, is searchable after the upgrade."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the upgrade path is the same SQL; run on SQLite")
    url = database_url.rsplit("/", 1)[0] + "/upgrade.db"
    await upgrade(url, "0004")
    db = Database(url)
    try:
        async with db.session() as session:
            await session.execute(
                text(
                    "INSERT INTO clients (id, name, kind, stop_list, created_at) VALUES (1, 'ИП Пётр', 'person', 0, '2026-01-01 00:00:00')"
                )
            )
            await session.execute(text("INSERT INTO phones (e164, client_id) VALUES ('+79167770007', 1)"))
            await session.execute(
                text(
                    "INSERT INTO leads (id, name, source, status, created_at) VALUES (1, 'Ёлкин', 'x', 'new', '2026-01-01 00:00:00')"
                )
            )
        await db.dispose()
        await upgrade(url)
        db = Database(url)
        head = Viewer(1, head=True)
        assert await _names(db, "петр", head) == ["ИП Пётр"]
        assert await _names(db, "89167770007", head) == ["ИП Пётр"]
        assert await _names(db, "елкин", head, Kind.LEAD) == ["Ёлкин"]
        # The terms of rows stored before carry their creation time (filled by the migration).
        total, stale = await _terms_out_of_step(db)
        assert total > 0
        assert stale == 0
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(PhoneRow)) == 1
    finally:
        await db.dispose()


async def test_a_broad_search_walks_the_term_index_and_lists_everyone_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every token broad the list is walked in bounded batches: pages list each matching party exactly
    once in the requested sort (ascending, descending, newest first), and a manager's filter applies."""
    from crmtel.store import crm_lists

    monkeypatch.setattr(crm_lists, "NARROW", 3)
    monkeypatch.setattr(crm_lists, "WALK_BATCH", 4)
    monkeypatch.setattr(crm_lists, "MAX_WALK", 8)
    monkeypatch.setattr(crm_lists, "CANDIDATES", 0)  # newest first walks the list too
    ids = await _seed(db)
    parties = PartyRepository(db)
    for i in range(25):
        await parties.add_client(NewClient(name=f"ООО «Тест {i:02d}» ООО", phones=(f"+7916123{i:04d}",)))
    await parties.add_client(NewClient(name="Оооошка Виктор", phones=("+79161239999",)))
    for i in range(12):
        await parties.add_client(NewClient(name=f"Абв {i:02d}", phones=(f"+7916124{i:04d}",)))
    head = Viewer(ids["head"], head=True)
    lists = PartyLists(db)

    async def walk(q: PartyQuery, viewer: Viewer) -> list[str]:
        got: list[str] = []
        page = await lists.page(q, viewer)
        assert page.strategy == "walk"
        while True:
            assert page.items or page.next is None  # never an empty page with more to come
            got += [i.name for i in page.items]
            if page.next is None:
                return got
            page = await lists.page(replace(q, after=page.next), viewer)

    q = PartyQuery(Kind.CLIENT, tokens=parse_query("ооо"), limit=5)
    got = await walk(q, head)
    assert len(got) == len(set(got)) == 27
    assert got[:2] == ["ООО «Ромашка»", "ООО «Тест 00» ООО"]
    assert got[-1] == "Оооошка Виктор"
    down = await walk(replace(q, sort=Sort.NAME_DESC), head)
    assert down == list(reversed(got))
    newest = await walk(replace(q, sort=Sort.CREATED_DESC), head)
    assert newest[0] == "Оооошка Виктор"
    assert sorted(newest) == sorted(got)
    anna = Viewer(ids["anna"], head=False)
    page = await lists.page(replace(q, limit=50), anna)
    assert "ООО «Ромашка»" not in [i.name for i in page.items]


async def test_a_managers_broad_search_page_is_never_empty_while_her_rows_remain(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many matches she may not see come first in the sort: her own client is still on the first page."""
    from crmtel.store import crm_lists

    monkeypatch.setattr(crm_lists, "NARROW", 3)
    monkeypatch.setattr(crm_lists, "WALK_BATCH", 4)
    monkeypatch.setattr(crm_lists, "MAX_WALK", 8)
    ids = await _seed(db)
    parties = PartyRepository(db)
    for i in range(40):
        await parties.add_client(
            NewClient(name=f"Ззтест {i:02d}", phones=(f"+7916125{i:04d}",), manager_id=ids["boris"])
        )
    await parties.add_client(NewClient(name="Ззтест Яна", phones=("+79161269999",), manager_id=ids["anna"]))
    anna = Viewer(ids["anna"], head=False)
    for sort in (Sort.NAME, Sort.NAME_DESC):
        page = await PartyLists(db).page(
            PartyQuery(Kind.CLIENT, tokens=parse_query("ззтест"), limit=5, sort=sort), anna
        )
        assert [i.name for i in page.items] == ["Ззтест Яна"]
        assert page.next is None


async def test_a_heads_narrow_search_pages_from_the_term_index_in_name_order(db: Database) -> None:
    """A head's narrow search with no filter is read from the term index alone: pages of 3 list every match once,
    in name order (ё as е, whatever the case, a number's tail too) and exactly reversed for «-name»; a manager's
    same search still sees only what she may."""
    ids = await _seed(db)
    parties = PartyRepository(db)
    names = [
        "Соколова Юлия",
        "соколова анна",
        "ООО «Соколов и сын»",
        "Сокол Пётр",
        "Соколёва Вера",
        "Соколова Ира",
    ]
    for i, name in enumerate(names):
        await parties.add_client(NewClient(name=name, phones=(f"+7916777{i:04d}",), manager_id=ids["boris"]))
    await parties.add_client(NewClient(name="Соколова Ада", phones=("+79167770099",), manager_id=ids["anna"]))
    head = Viewer(ids["head"], head=True)

    async def pages(q: PartyQuery, viewer: Viewer) -> list[str]:
        got: list[str] = []
        while True:
            page = await PartyLists(db).page(q, viewer)
            assert page.strategy == "terms"
            got += [i.name for i in page.items]
            if page.next is None:
                return got
            q = replace(q, after=page.next)

    q = PartyQuery(Kind.CLIENT, tokens=parse_query("СОКОЛ"), limit=3)
    up = await pages(q, head)
    assert up == [
        "ООО «Соколов и сын»",  # its sort key starts with the form: «ооо «соколов и сын»»
        "Сокол Пётр",
        "Соколёва Вера",  # read as «соколева»
        "Соколова Ада",
        "соколова анна",
        "Соколова Ира",
        "Соколова Юлия",
    ]
    keys = [name.casefold().replace("ё", "е") for name in up]
    assert keys == sorted(keys)
    assert await pages(replace(q, sort=Sort.NAME_DESC), head) == list(reversed(up))
    assert await pages(replace(q, tokens=parse_query("соколова")), head) == [
        n for n in up if n.casefold().startswith("соколова")
    ]
    assert await pages(replace(q, tokens=parse_query("777-00-03")), head) == ["Сокол Пётр"]
    anna = Viewer(ids["anna"], head=False)
    page = await PartyLists(db).page(replace(q, limit=50), anna)
    assert [i.name for i in page.items] == ["Соколова Ада"]


async def test_two_edits_saved_at_once_on_one_version_one_is_refused(db: Database) -> None:
    """Two editors who loaded the same card save at the same moment: one edit is kept, the other is refused
    as stale — never both accepted with the first silently overwritten (the version check holds the row)."""
    ids = await _seed(db)
    head = Viewer(ids["head"], head=True)
    cards = PartyCards(db)
    for round_ in range(3):
        card = await cards.get(Kind.CLIENT, ids["petrov"], head)
        assert card is not None
        version = card.updated_at or card.created_at
        results = await asyncio.gather(
            cards.edit(
                Kind.CLIENT, ids["petrov"], head, PartyChanges(name=f"Петров А{round_}"), version=version
            ),
            cards.edit(
                Kind.CLIENT, ids["petrov"], head, PartyChanges(name=f"Петров Б{round_}"), version=version
            ),
            return_exceptions=True,
        )
        kinds = sorted(type(r).__name__ for r in results)
        assert kinds == ["EditResult", "StaleEdit"], results


async def test_a_converted_leads_status_cannot_be_edited(db: Database) -> None:
    """A converted lead set back to «new» would be converted again into a second client: refused."""
    ids = await _seed(db)
    anna = Viewer(ids["anna"], head=False)
    client_id = await PartyMerger(db).convert(ids["lead"], anna)
    for status in ("new", "in_work", "refused"):
        with pytest.raises(LeadConverted):
            await PartyCards(db).edit(Kind.LEAD, ids["lead"], anna, PartyChanges(status=status))
    with pytest.raises(MergeRefused):
        await PartyMerger(db).convert(ids["lead"], anna)
    card = await PartyCards(db).get(Kind.LEAD, ids["lead"], anna)
    assert card is not None
    assert (card.status, card.client_id) == ("converted", client_id)


async def test_a_contact_acting_for_two_clients_edited_on_one_finds_both(db: Database) -> None:
    """Renaming a contact person (and changing her number) on client A reindexes client B she also acts for:
    both are found by the new name and number, neither by the old name."""
    ids = await _seed(db)
    head = Viewer(ids["head"], head=True)
    parties = PartyRepository(db)
    alfa = await parties.add_client(NewClient(name="ООО «Альфа»", phones=("+74951110001",)))
    beta = await parties.add_client(NewClient(name="ООО «Бета»", phones=("+74952220002",)))
    contact = await parties.add_contact("Лыкова Дарья", ["+79035554400"], [alfa.id, beta.id])
    assert sorted(await _names(db, "лыкова", head)) == ["ООО «Альфа»", "ООО «Бета»"]
    await PartyCards(db).edit(
        Kind.CLIENT,
        alfa.id,
        head,
        PartyChanges(
            contacts=(
                ContactInput(contact.id, "Иванова Дарья", None, None, (PhoneInput("+79261234567", None),)),
            )
        ),
    )
    for typed in ("иванова", "9261234567"):
        assert sorted(await _names(db, typed, head)) == ["ООО «Альфа»", "ООО «Бета»"], typed
    assert await _names(db, "лыкова", head) == []


async def test_an_unassigned_clients_timeline_pages_to_every_call_of_mine_and_no_other(db: Database) -> None:
    """A manager on an unassigned client sees the calls that rang at her phone, however many of other
    people's calls are newer (60 calls, the newest 50 rang at Boris's: her 10 older ones were on no page,
    the first page empty with no cursor), and none of Boris's."""
    ids = await _seed(db)
    mine: list[int] = []
    async with db.session() as session:
        for i in range(60):
            ext = "101" if i < 10 else "102"
            row = CallRow(
                pbx="pbx1",
                linkedid=f"u{i}",
                direction="inbound",
                caller_number="+79030000001",
                started_at=T0 + timedelta(minutes=i),
                ended_at=T0 + timedelta(minutes=i, seconds=50),
                rang=[ext],
                answered_by=ext,
                outcome="answered",
                talk_seconds=40,
                party_kind="client",
                party_id=ids["pool"],
            )
            session.add(row)
            await session.flush()
            if ext == "101":
                mine.append(row.id)
    anna = Viewer(ids["anna"], head=False, extensions=frozenset({"101"}))
    timelines = Timelines(db)
    for limit in (50, 3):
        seen: list[int] = []
        page = await timelines.page(Kind.CLIENT, ids["pool"], anna, owner=False, limit=limit)
        seen += [i.id for i in page.items if isinstance(i, TimelineCall)]
        while page.next is not None:
            page = await timelines.page(
                Kind.CLIENT, ids["pool"], anna, owner=False, limit=limit, after=page.next
            )
            seen += [i.id for i in page.items if isinstance(i, TimelineCall)]
        assert seen == sorted(mine, reverse=True), limit


async def test_a_missed_call_opens_its_own_callback_beside_a_planned_one(db: Database) -> None:
    """«Call back in 3 days» planned on a client; today the client calls and nobody answers: the miss gets a
    callback due soon of its own (it was counted on the planned task, due in 3 days, so nobody called back
    today); a second miss counts on that one; the planned task stays as planned."""
    ids = await _seed(db)
    anna = Viewer(ids["anna"], head=False)
    now = datetime.now(UTC)
    planned = await CrmTasks(db).create(
        NewTask(
            kind="callback",
            title="Перезвонить через 3 дня",
            due_at=now + timedelta(days=3),
            manager_id=ids["anna"],
            party_kind=Kind.CLIENT,
            party_id=ids["petrov"],
        ),
        anna,
    )
    for minutes in (0, 5):
        async with db.session() as session:
            await record_missed_in(
                session,
                MissedCall(
                    phone="+79167770007",
                    call_id=None,
                    manager_id=ids["anna"],
                    client_id=ids["petrov"],
                    lead_id=None,
                    title="Пропущенный: ИП Петров",
                    due_at=now + timedelta(minutes=30 + minutes),
                    at=now + timedelta(minutes=minutes),
                ),
            )
    async with db.session() as session:
        rows = list(
            (
                await session.execute(
                    select(TaskRow)
                    .where(TaskRow.phone == "+79167770007", TaskRow.status == "open")
                    .order_by(TaskRow.id)
                )
            ).scalars()
        )
    assert [(r.id == planned.id, r.source, r.missed_count) for r in rows] == [
        (True, "planned", 0),
        (False, "missed", 2),
    ]
    assert rows[1].due_at.replace(tzinfo=UTC) == (now + timedelta(minutes=30)).replace(tzinfo=UTC)


@pytest.mark.parametrize("plans", ["walks", "candidates", "newest", "newest-few"])
async def test_every_plan_pages_exactly_what_a_plain_reference_finds(
    db: Database, monkeypatch: pytest.MonkeyPatch, plans: str
) -> None:
    """Broad and narrow searches of one and two words, as a head and as a manager, with and without a manager
    filter, in every sort: paged to the end, each lists exactly the parties a plain Python reference finds
    (every token a prefix of one of the party's terms, the filter and the viewer applied) once each, never an
    empty page with more to come, and newest first in exactly the reference's order — whether a broad search
    walks the list, sorts the rarest token's candidates or walks each of its terms newest first (all of them,
    or only when they are few)."""
    import random

    from crmtel.crm.search import PartyText, name_key, terms
    from crmtel.store import crm_lists

    monkeypatch.setattr(crm_lists, "NARROW", 6)
    monkeypatch.setattr(crm_lists, "WALK_BATCH", 4)
    monkeypatch.setattr(crm_lists, "MAX_WALK", 8)
    monkeypatch.setattr(crm_lists, "CANDIDATES", 0 if plans == "walks" else 40)
    monkeypatch.setattr(crm_lists, "BRANCHES", {"candidates": 0, "newest-few": 1}.get(plans, 32))
    ids = await _seed(db)
    managers = (ids["anna"], ids["boris"], None)
    rnd = random.Random(7)
    forms = ("ИП", "ООО", "")
    surnames = ("Кузнецов", "Кузьмин", "Петров", "Семёнов", "Иванов")
    firsts = ("Пётр", "Иван", "Ольга")
    parties = PartyRepository(db)
    for i in range(90):
        name = " ".join(w for w in (rnd.choice(forms), rnd.choice(surnames), rnd.choice(firsts)) if w)
        await parties.add_client(
            NewClient(name=name, phones=(f"+7916555{i:04d}",), manager_id=rnd.choice(managers))
        )
    async with db.session() as session:
        # Many share a second: ties are broken by id.
        for cid in (await session.execute(select(ClientRow.id))).scalars().all():
            await session.execute(
                update(ClientRow)
                .where(ClientRow.id == cid)
                .values(created_at=T0 + timedelta(seconds=rnd.randrange(20)))
            )
        # The search index carries each party's creation time: re-indexed as a writer does.
        await reindex_in(session, "c", (await session.execute(select(ClientRow.id))).scalars().all())
        rows = (await session.execute(select(ClientRow))).scalars().all()
        phones = {
            cid: e164
            for cid, e164 in (await session.execute(select(PhoneRow.client_id, PhoneRow.e164))).all()
            if cid is not None
        }
    book = [
        (
            r.id,
            r.name,
            r.manager_id,
            _as_utc(r.created_at),
            terms(PartyText(name=r.name, phones=(phones[r.id],))),
        )
        for r in rows
        if r.id in phones
    ]

    def reference(typed: str, viewer: Viewer, manager_id: int | None, sort: Sort) -> list[int]:
        tokens = parse_query(typed)
        found = [
            p
            for p in book
            if all(any(t.startswith(pre) for t in p[4] for pre in tok.prefixes) for tok in tokens)
            and (viewer.head or p[2] in (viewer.manager_id, None))
            and (manager_id is None or p[2] == manager_id)
        ]
        if sort is Sort.CREATED_DESC:
            found.sort(key=lambda p: (p[3], p[0]), reverse=True)
        else:
            found.sort(key=lambda p: (name_key(p[1]), p[0]), reverse=sort is Sort.NAME_DESC)
        return [p[0] for p in found]

    lists = PartyLists(db)
    head = Viewer(ids["head"], head=True)
    anna = Viewer(ids["anna"], head=False)
    plans_seen: set[str] = set()
    for typed in ("ип кузн", "кузн ип", "куз", "петр", "ооо иван", "семенов петр", "5550012", "ип"):
        for viewer in (head, anna):
            for manager_id in (None, ids["boris"]):
                for sort in (Sort.NAME, Sort.NAME_DESC, Sort.CREATED_DESC):
                    q = PartyQuery(
                        Kind.CLIENT, tokens=parse_query(typed), manager_id=manager_id, sort=sort, limit=4
                    )
                    got: list[int] = []
                    page = await lists.page(q, viewer)
                    while True:
                        plans_seen.add(page.strategy)
                        assert page.items or page.next is None, (typed, sort)
                        got += [i.id for i in page.items]
                        if page.next is None:
                            break
                        page = await lists.page(replace(q, after=page.next), viewer)
                    want = reference(typed, viewer, manager_id, sort)
                    case = (typed, viewer.head, manager_id, sort)
                    assert len(got) == len(set(got)), case
                    assert sorted(got) == sorted(want), case
                    if sort is Sort.CREATED_DESC:
                        assert got == want, case
    # Each variant really took the plan it is named after (a fallback would pass unnoticed otherwise).
    # With one term walked at most, a token of more terms falls back to sorting its candidates.
    expected = {"walks": set(), "candidates": {"candidates"}, "newest": {"newest"}}
    want_plans = expected.get(plans, {"newest", "candidates"})
    assert plans_seen & {"newest", "candidates"} == want_plans, plans_seen


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def test_newest_first_reads_a_term_without_matches_only_as_far_back_as_the_page(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broad search newest first whose rarest token covers two words, one of which matches no party of the
    search (``ип кузн``: «кузнецова», no «ИП Кузнецова»), lists the newest matches and reads that word's
    entries only as far back as the page reaches, not to their end: the page costs SQLite fewer steps than
    counting both tokens' entries (which it does to choose the rarest) and checking each of that word's entries
    once (which it used to do on every page)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("counts SQLite's virtual machine steps; the plan is the same SQL on PostgreSQL")
    from sqlalchemy import event, insert
    from sqlalchemy.util import await_only as await_

    from crmtel.store import crm_lists

    monkeypatch.setattr(crm_lists, "NARROW", 6)
    monkeypatch.setattr(crm_lists, "CANDIDATES", 5000)
    parties = PartyRepository(db)
    ids = [
        (await parties.add_client(NewClient(name=f"ИП Кузнецов Иван {i}", phones=(f"+7916444{i:04d}",)))).id
        for i in range(12)
    ]
    async with db.session() as session:
        for i, cid in enumerate(ids):
            await session.execute(
                update(ClientRow).where(ClientRow.id == cid).values(created_at=T0 + timedelta(minutes=i))
            )
        await reindex_in(session, "c", ids)
        # Older entries of a word no party of the search has, and more «ип» than «кузн» (so «кузн» drives).
        old = T0 - timedelta(days=30)
        fruitless = [
            {
                "kind": "c",
                "party_id": 100_000 + i,
                "term": "кузнецова",
                "name_key": "кузнецова",
                "created_at": old - timedelta(minutes=i),
            }
            for i in range(1500)
        ]
        filler = [
            {"kind": "c", "party_id": 200_000 + i, "term": "ип", "name_key": "ип", "created_at": old}
            for i in range(1600)
        ]
        await session.execute(insert(PartyTermRow), fruitless + filler)

    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    counted = Database(database_url)

    @event.listens_for(counted.engine.sync_engine, "connect")
    def _count(dbapi_connection: Any, _record: Any) -> None:
        await_(dbapi_connection._connection.set_progress_handler(step, 100))

    try:
        q = PartyQuery(Kind.CLIENT, tokens=parse_query("кузн ип"), sort=Sort.CREATED_DESC, limit=4)
        page = await PartyLists(counted).page(q, Viewer(1, head=True))
        page_steps, steps = steps, 0
        # What the page cannot avoid (counting both tokens' entries to choose the rarest) and what it avoids
        # (checking every «кузнецова» entry against «ип»).
        async with counted.session() as session:
            for prefix in ("кузн", "ип"):
                await session.execute(
                    text(
                        "SELECT count(*) FROM (SELECT party_id FROM party_terms WHERE kind = 'c' AND term >= :p "
                        "AND term < :p || char(1114111) LIMIT 5000)"
                    ),
                    {"p": prefix},
                )
            await session.execute(
                text(
                    "SELECT count(*) FROM party_terms a WHERE a.kind = 'c' AND a.term = 'кузнецова' AND EXISTS "
                    "(SELECT 1 FROM party_terms p WHERE p.kind = 'c' AND p.party_id = a.party_id "
                    "AND p.term >= 'ип' AND p.term < 'ип' || char(1114111))"
                )
            )
        reference_steps = steps
    finally:
        await counted.dispose()
    assert (page.strategy, [i.id for i in page.items]) == ("newest", ids[::-1][:4])
    assert page_steps < reference_steps, (page_steps, reference_steps)


async def test_a_broad_search_counts_each_word_once_per_bound(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broad word newest first is counted up to ``NARROW`` to choose the plan, then up to ``CANDIDATES`` to
    choose the rarest token, and that count is reused when the walk falls back from walking its terms to
    sorting its candidates: two counts, not three (each reads up to that many index entries)."""
    from sqlalchemy import event

    from crmtel.store import crm_lists

    monkeypatch.setattr(crm_lists, "NARROW", 2)
    monkeypatch.setattr(crm_lists, "CANDIDATES", 40)
    monkeypatch.setattr(crm_lists, "BRANCHES", 0)  # too many terms to walk: the candidates are sorted
    await _seed(db)
    parties = PartyRepository(db)
    for i in range(5):
        await parties.add_client(NewClient(name=f"ИП Кузнецов {i}", phones=(f"+7916333{i:04d}",)))
    counts: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().lower().startswith("select count(*)") and "party_terms" in statement:
            counts.append(statement)

    q = PartyQuery(Kind.CLIENT, tokens=parse_query("ип"), sort=Sort.CREATED_DESC)
    page = await PartyLists(db).page(q, Viewer(1, head=True))
    assert page.strategy == "candidates"
    assert len(page.items) == 6  # the five and «ИП Петров Пётр Ильич»
    assert len(counts) == 2, counts
