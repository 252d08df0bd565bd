"""The owner rule (``crmtel.calls.owner``): every call belongs to one manager, by a rule in a fixed order."""

from __future__ import annotations

from datetime import UTC, datetime

from crmtel.calls.owner import Owner, OwnerReason, OwnerRules, Staff, owner_of
from crmtel.domain import CallRecord, Direction, Outcome

ANNA, BORIS, VERA, GLEB = 1, 2, 3, 4
STAFF = Staff(
    by_extension={"101": ANNA, "102": BORIS, "103": VERA, "104": GLEB},
    by_login={"anna": ANNA, "boris": BORIS, "vera": VERA, "gleb": GLEB},
)
RULES = OwnerRules(queue_owners={"retail": "boris"}, default_owner="gleb")


def _call(direction: Direction = Direction.INBOUND, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "pbx": "pbx1",
        "linkedid": "1.1",
        "direction": direction,
        "caller_number": "+79161110001" if direction is Direction.INBOUND else "101",
        "caller_name": None,
        "dialled": "4951234567",
        "started_at": datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
        "outcome": Outcome.MISSED,
    }
    values.update(fields)
    return CallRecord(**values)  # type: ignore[arg-type]


def test_an_answered_call_belongs_to_who_answered_it() -> None:
    """Whoever else rang or owns the client, the manager whose extension answered owns the call."""
    call = _call(answered_by="103", rang=("101", "103"), outcome=Outcome.ANSWERED)
    assert owner_of(call, ANNA, STAFF, RULES) == Owner(VERA, OwnerReason.ANSWERED)


def test_an_outbound_call_belongs_to_who_placed_it_answered_or_not() -> None:
    """A manager's own unanswered outbound call is theirs (not "(unassigned)")."""
    assert owner_of(_call(Direction.OUTBOUND, caller_number="102"), None, STAFF, RULES) == Owner(
        BORIS, OwnerReason.PLACED
    )


def test_a_missed_call_of_a_known_client_belongs_to_the_personal_manager() -> None:
    """The client's personal manager owns a missed call even if other phones rang for it."""
    call = _call(rang=("101",), queue="retail")
    assert owner_of(call, VERA, STAFF, RULES) == Owner(VERA, OwnerReason.PERSONAL_MANAGER)


def test_a_missed_call_from_a_new_number_belongs_to_the_first_manager_whose_phone_rang() -> None:
    """No client, phones 103 then 101 rang: the first of them (the PBX's offer order) owns it — not nobody."""
    call = _call(rang=("103", "101"), queue="retail")
    assert owner_of(call, None, STAFF, RULES) == Owner(VERA, OwnerReason.RANG)


def test_phones_of_nobody_or_of_a_departed_manager_are_skipped() -> None:
    """An extension crmtel does not know, or one of an inactive manager, does not own the call."""
    staff = Staff(STAFF.by_extension, STAFF.by_login, inactive=frozenset({VERA}))
    call = _call(rang=("199", "103", "101"))
    assert owner_of(call, VERA, staff, RULES) == Owner(ANNA, OwnerReason.RANG)


def test_a_queue_call_no_phone_rang_for_belongs_to_the_queue_owner_then_the_default_owner() -> None:
    """Abandoned in the queue before any phone rang: the queue's owner; another queue: the default owner."""
    assert owner_of(_call(queue="retail"), None, STAFF, RULES) == Owner(BORIS, OwnerReason.QUEUE_OWNER)
    assert owner_of(_call(queue="wholesale"), None, STAFF, RULES) == Owner(GLEB, OwnerReason.DEFAULT_OWNER)


def test_without_any_configured_owner_a_call_nobody_reached_has_no_owner() -> None:
    """No rule applies: None (never a made-up manager)."""
    assert owner_of(_call(), None, STAFF, OwnerRules()) is None
    assert owner_of(_call(queue="retail"), None, Staff(), RULES) is None
