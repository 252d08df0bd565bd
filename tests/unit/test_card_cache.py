"""The card cache alone: bounded (least recently rung out first), forgets by number spelling and party,
keeps no card read across a change that touched it, and serves nothing while it may miss changes."""

from __future__ import annotations

from sqlalchemy import select, text, update

from crmtel.push.cardcache import CardCache
from crmtel.push.messages import Card
from crmtel.store.changes import StoreChange, _Pending, note_statement
from crmtel.store.models import CallRow, PbxLeaseRow, WebSessionRow


def card(n: int, party: int | None = None) -> Card:
    return Card(kind="client" if party else "new_lead", number=f"+7916{n:07d}", party_id=party)


def key(n: int) -> tuple[str, str | None]:
    return (f"+7916{n:07d}", f"8916{n:07d}")


def test_the_cache_holds_at_most_its_size_dropping_the_least_recently_rung() -> None:
    """10,000 numbers through a cache of 100 leave 100 cards: the last ones, and one read again stays."""
    cache = CardCache(100)
    for n in range(10_000):
        cache.put(key(n), card(n), cache.generation)
        if n >= 1:
            assert cache.get(key(1)) is not None  # rung again and again: never the oldest
    assert len(cache) == 100
    assert cache.get(key(1)) is not None
    assert cache.get(key(9_999)) is not None
    assert cache.get(key(9_900)) is None  # dropped by key(1) staying in
    assert cache.get(key(0)) is None
    assert len(cache._by_number) <= 3 * 100


def test_a_change_forgets_the_cards_of_its_numbers_in_any_spelling_and_of_its_parties() -> None:
    """A call stored as E.164, E.164 without "+", or as the PBX gave it forgets the card; a party's call too."""
    cache = CardCache(100)
    for n in range(4):
        cache.put(key(n), card(n, party=n + 1), cache.generation)
    cache.forget(StoreChange(numbers=frozenset({"79160000000"})))
    cache.forget(StoreChange(numbers=frozenset({"89160000001"})))
    cache.forget(StoreChange(parties=frozenset({("client", 3)})))
    assert [cache.get(key(n)) is not None for n in range(4)] == [False, False, False, True]
    cache.forget(StoreChange(everything=True))
    assert len(cache) == 0


def test_a_card_read_across_a_change_is_kept_only_if_the_change_did_not_touch_it() -> None:
    """A read that began before a commit touching its number is not kept; one touching another number is."""
    cache = CardCache(100)
    began = cache.generation
    cache.forget(StoreChange(numbers=frozenset({"+79160000005"})))
    assert cache.put(key(1), card(1), began)
    assert not cache.put(key(5), card(5), began)
    assert cache.put(key(2), card(2, party=7), began)
    cache.forget(StoreChange(parties=frozenset({("client", 7)})))
    assert not cache.put(key(3), card(3, party=7), began)
    assert cache.get(key(2)) is None  # forgotten by its party's change
    cache.forget(StoreChange(everything=True))
    assert not cache.put(key(4), card(4), began)


def test_an_old_read_beyond_the_remembered_changes_is_not_kept() -> None:
    """More changes than the cache remembers since the read began: it cannot tell, so it keeps nothing."""
    cache = CardCache(100)
    began = cache.generation
    for n in range(300):
        cache.forget(StoreChange(numbers=frozenset({f"+7999{n:07d}"})))
    assert not cache.put(key(1), card(1), began)


def test_a_distrusted_cache_serves_and_keeps_nothing_until_trusted_again() -> None:
    """While changes may be missed (the cluster channel is down) every ring reads the store."""
    cache = CardCache(100)
    cache.put(key(1), card(1), cache.generation)
    cache.distrust()
    assert cache.get(key(1)) is None
    assert not cache.put(key(1), card(1), cache.generation)
    cache.trust()
    assert cache.put(key(1), card(1), cache.generation)
    assert cache.get(key(1)) is not None


def test_a_card_older_than_max_age_is_read_again() -> None:
    """A change made outside crmtel shows within max_age."""
    now = [0.0]
    cache = CardCache(100, max_age=60.0, clock=lambda: now[0])
    cache.put(key(1), card(1), cache.generation)
    now[0] = 59.0
    assert cache.get(key(1)) is not None
    now[0] = 61.0
    assert cache.get(key(1)) is None
    assert len(cache) == 0


def test_hand_written_dml_forgets_every_card_and_reads_or_unseen_tables_nothing() -> None:
    """text()/driver SQL that writes is taken as touching anything; SELECTs, PRAGMAs and writes to tables no card
    shows (sessions, leases) are not; a result picked on a call is not either, a party re-linked is."""

    def change(statement: object) -> StoreChange:
        pending = _Pending()
        note_statement(pending, statement, [], None)
        return pending.change()

    assert change(text("  update clients set name = 'x'")).everything
    assert change("DELETE FROM deals").everything
    assert not change(text("SELECT 1"))
    assert not change("PRAGMA busy_timeout=10")
    assert not change(select(CallRow.id))
    assert not change(update(WebSessionRow).values(manager_id=1))
    assert not change(update(PbxLeaseRow).values(epoch=2))
    assert not change(update(CallRow).values(result="sale", result_by=1))
    assert change(update(CallRow).values(party_id=1)).everything
