"""A broad search newest first, walked side by side over the rarest token's words, pages exactly like a plain
reference over a seeded random book: many parties created in the same second or microsecond, words sharing
prefixes of very different sizes, ё and е, as a head and as a manager, with parties renamed between pages."""

from __future__ import annotations

import functools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from crmtel.crm.models import Kind, PartyQuery, Sort, Viewer
from crmtel.crm.search import PartyText, name_key, parse_query, terms
from crmtel.domain import Role
from crmtel.store import crm_lists
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_terms import reindex_in
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.models import ClientRow

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# Skewed on purpose: «кузнецова» is common, «кузнец» rare, so one token's words differ a hundredfold in size;
# and almost no «ИП Кузнецова», so «ип кузн» finds nearly nothing under that word (read only as far as needed).
WORDS = (
    ["кузнецова"] * 30 + ["кузнецов"] * 4 + ["кузнец"] + ["кузьмин"] * 3 + ["Семёнов"] * 3 + ["иванов"] * 30
)
FORMS = ["ИП"] * 6 + ["ООО"] * 2 + [""] * 3
FIRSTS = ("Пётр", "Петра", "Иван", "Ёлка", "Елена")
TYPED = (
    "ип",
    "кузн",
    "кузнецов",
    "кузнец",
    "ку",
    "семен",
    "семё",
    "пет",
    "ел",
    "ёл",
    "ооо",
    "ип кузн",
    "иван",
)


def _name(rnd: random.Random) -> str:
    word = rnd.choice(WORDS)
    form = rnd.choice(FORMS if word != "кузнецова" or rnd.random() < 0.02 else ["ООО", ""])
    return " ".join(w for w in (form, word, rnd.choice(FIRSTS)) if w)


@pytest.mark.parametrize("seed", [1, 2])
async def test_newest_first_pages_exactly_like_a_plain_reference_on_a_random_book(
    db: Database, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Every page of random searches (one to three picks of typical words) newest first, followed by its cursor, is exactly the
    next ``limit`` parties the plain reference finds after that cursor in the book as it is then — parties
    renamed in or out of the search between pages included: none missing, repeated or out of order."""
    monkeypatch.setattr(crm_lists, "NARROW", 4)
    monkeypatch.setattr(crm_lists, "CANDIDATES", 100_000)
    monkeypatch.setattr(crm_lists, "MAX_WALK", 12)
    rnd = random.Random(seed)
    managers = ManagerRepository(db)
    anna = await managers.save(login="anna", name="Анна", extensions=("101",))
    boris = await managers.save(login="boris", name="Борис", extensions=("102",))
    head = await managers.save(login="head", name="Ольга", role=Role.HEAD)
    owners = (anna.id, boris.id, None)
    async with db.session() as session:
        rows = []
        for _ in range(500):
            name = _name(rnd)
            # A few seconds for 500 parties, and some sharing one microsecond: ties broken by id only.
            born = T0 + timedelta(seconds=rnd.randrange(6), microseconds=rnd.choice((0, 0, 1, 999_999)))
            rows.append(
                {
                    "name": name,
                    "name_key": name_key(name),
                    "manager_id": rnd.choice(owners),
                    "created_at": born,
                }
            )
        await session.execute(insert(ClientRow), rows)
        await reindex_in(session, "c", (await session.execute(select(ClientRow.id))).scalars().all())

    async def book() -> list[tuple[int, str, int | None, datetime]]:
        async with db.session() as session:
            found = await session.execute(
                select(ClientRow.id, ClientRow.name, ClientRow.manager_id, ClientRow.created_at)
            )
            return [(pid, name, mid, born) for pid, name, mid, born in found.all()]

    def reference(
        parties: list[tuple[int, str, int | None, datetime]],
        typed: str,
        viewer: Viewer,
        manager_id: int | None,
    ) -> list[tuple[datetime, int]]:
        tokens = parse_query(typed)
        found = [
            (born, pid)
            for pid, name, mid, born in parties
            if all(any(t.startswith(pre) for t in terms_of(name) for pre in tok.prefixes) for tok in tokens)
            and (viewer.head or mid in (viewer.manager_id, None))
            and (manager_id is None or mid == manager_id)
        ]
        return sorted(found, reverse=True)

    lists = PartyLists(db)
    terms_of = functools.cache(lambda name: terms(PartyText(name=name)))
    viewers = (Viewer(head.id, head=True), Viewer(anna.id, head=False))
    strategies: set[str] = set()
    all_ids = [p[0] for p in await book()]
    for _ in range(12):
        typed = " ".join(rnd.choice(TYPED) for _ in range(rnd.randint(1, 3)))
        viewer = rnd.choice(viewers)
        manager_id = rnd.choice((None, None, boris.id))
        q = PartyQuery(
            Kind.CLIENT,
            tokens=parse_query(typed),
            manager_id=manager_id,
            sort=Sort.CREATED_DESC,
            limit=rnd.randint(1, 7),
        )
        page = await lists.page(q, viewer)
        mark: tuple[datetime, int] | None = None
        pages = 0
        while True:
            strategies.add(page.strategy)
            want = [p for p in reference(await book(), typed, viewer, manager_id) if mark is None or p < mark]
            case = (seed, typed, viewer.head, manager_id, q.limit, pages)
            assert [i.id for i in page.items] == [pid for _, pid in want[: q.limit]], case
            assert (page.next is not None) == (len(want) > q.limit), case
            if page.next is None or pages > 40:
                break
            mark = (datetime.fromisoformat(page.next.key), page.next.id)
            pages += 1
            if rnd.random() < 0.3:
                # An edit between pages moves a party into or out of the search (its place in time stays).
                async with db.session() as session:
                    pid = rnd.choice(all_ids)
                    name = _name(rnd)
                    await session.execute(
                        update(ClientRow)
                        .where(ClientRow.id == pid)
                        .values(name=name, name_key=name_key(name))
                    )
                    await reindex_in(session, "c", [pid])
            page = await lists.page(replace(q, after=page.next), viewer)
    assert "newest" in strategies, strategies
