"""Transfers, internal, outbound and click-to-call calls, built from real Asterisk 22 event shapes."""

from __future__ import annotations

from crmtel.ami.protocol import Message
from crmtel.calls.tracker import new_state
from crmtel.domain import CallAnswered, CallRecord, CallRingStopped, Direction, Outcome
from crmtel.fakepbx.server import CHANNEL_FIELDS
from tests.fixtures.traces import LIVE_TRACES_DIR, Script, TimedMessage, ended, load_messages, run, to_events

L1 = "1795470000.1"
T = ("PJSIP/trunk-00000001", L1)
A101 = ("PJSIP/101-00000002", "1795470000.2")
B101 = ("PJSIP/101-00000003", "1795470005.3")  # 101's consultation channel (its own Linkedid)
L2 = B101[1]
C102_BLIND = ("PJSIP/102-00000004", "1795470006.4")
C102_CONSULT = ("PJSIP/102-00000004", "1795470005.4")


def _ch(
    leg: tuple[str, str],
    linkedid: str,
    prefix: str = "",
    *,
    state: int = 6,
    num: str = "<unknown>",
    cid_name: str = "<unknown>",
    context: str = "from-phones",
    exten: str = "",
) -> list[tuple[str, str]]:
    return Script.channel(
        leg[0],
        leg[1],
        linkedid,
        prefix=prefix,
        state=state,
        num=num,
        cid_name=cid_name,
        context=context,
        exten=exten,
    )


def _trunk(linkedid: str = L1, prefix: str = "", state: int = 6) -> list[tuple[str, str]]:
    """The client's trunk channel (Ivan Petrov calling the company's DID)."""
    return _ch(
        T,
        linkedid,
        prefix,
        state=state,
        num="79161110001",
        cid_name="Ivan Petrov",
        context="from-trunk",
        exten="4951234567",
    )


def _inbound_answered_by_101(s: Script) -> Script:
    """A client call from the trunk answered by 101 at t=2 and bridged in bridge B1."""
    s.add(1.0, "Newchannel", _trunk(state=4))
    s.add(1.0, "Newchannel", _ch(A101, L1, state=0, num="101", exten="s"))
    s.add(1.0, "DialBegin", _trunk(state=4), _ch(A101, L1, "Dest", state=0, num="101"), DialString="101")
    s.add(2.0, "DialEnd", _trunk(state=4), _ch(A101, L1, "Dest", num="101"), DialStatus="ANSWER")
    s.add(2.0, "BridgeEnter", _ch(A101, L1, num="101"), BridgeUniqueid="B1", BridgeNumChannels="1")
    s.add(2.0, "BridgeEnter", _trunk(), BridgeUniqueid="B1", BridgeNumChannels="2")
    return s


def _only(records: list[CallRecord], linkedid: str) -> CallRecord:
    matching = [r for r in records if r.linkedid == linkedid]
    assert len(matching) == 1
    return matching[0]


def _blind_transfer(
    s: Script,
    extension: str,
    transferer: tuple[str, str] = A101,
    transferee: list[tuple[str, str]] | None = None,
) -> None:
    """At 5.0 the transferer REFERs the call in bridge B1 to ``extension`` and hangs up; the transferee (the
    client's trunk channel) leaves the bridge, as Asterisk 22 reports a successful blind transfer."""
    transferee = _trunk() if transferee is None else transferee
    s.add(
        5.0,
        "BlindTransfer",
        [("Result", "Success")],
        _ch(transferer, L1, "Transferer", num="101"),
        [(f"Transferee{k}", v) for k, v in transferee],
        [("BridgeUniqueid", "B1"), ("BridgeType", "basic"), ("IsExternal", "Yes")],
        Context="from-phones",
        Extension=extension,
    )
    s.add(5.0, "BridgeLeave", _ch(transferer, L1, num="101"), BridgeUniqueid="B1", BridgeNumChannels="1")
    s.add(5.0, "Hangup", _ch(transferer, L1, num="101"), Cause="16")
    s.add(5.0, "BridgeLeave", transferee, BridgeUniqueid="B1", BridgeNumChannels="0")


def test_blind_transfer_makes_the_target_the_owner() -> None:
    """101 blind-transfers the client to 102, who answers: answered_by is 102, talk counted from 101's answer."""
    s = _inbound_answered_by_101(Script())
    _blind_transfer(s, "102")
    s.add(5.1, "Newchannel", _ch(C102_BLIND, L1, state=0, num="102", exten="s"))
    s.add(5.1, "DialBegin", _trunk(), _ch(C102_BLIND, L1, "Dest", state=0, num="102"), DialString="102")
    s.add(7.0, "DialEnd", _trunk(), _ch(C102_BLIND, L1, "Dest", num="102"), DialStatus="ANSWER")
    s.add(7.0, "BridgeEnter", _ch(C102_BLIND, L1, num="102"), BridgeUniqueid="B2", BridgeNumChannels="1")
    s.add(7.0, "BridgeEnter", _trunk(), BridgeUniqueid="B2", BridgeNumChannels="2")
    s.add(12.0, "Hangup", _trunk(), Cause="16")
    s.add(12.0, "Hangup", _ch(C102_BLIND, L1, num="102"), Cause="16")
    state, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], L1)
    assert record.answered_by == "102"
    assert record.extra["transferred_from"] == "101"
    assert record.rang == ("101", "102")
    assert record.outcome is Outcome.ANSWERED
    assert record.ring_seconds == 1.0
    assert record.talk_seconds == 10.0
    assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["101", "102"]
    assert not state.calls


def test_blind_transfer_nobody_answers_keeps_the_first_owner() -> None:
    """A blind transfer whose target never answers leaves the call with the manager who talked."""
    s = _inbound_answered_by_101(Script())
    s.add(
        5.0,
        "BlindTransfer",
        [("Result", "Success")],
        _ch(A101, L1, "Transferer", num="101"),
        _trunk(prefix="Transferee"),
        Extension="102",
        Context="from-phones",
    )
    s.add(5.0, "Hangup", _ch(A101, L1, num="101"), Cause="16")
    s.add(9.0, "Hangup", _trunk(), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], L1)
    assert record.answered_by == "101"
    assert "transferred_from" not in record.extra


def _attended(with_target_header: bool, linkedid_moves: bool) -> list[CallRecord]:
    s = _inbound_answered_by_101(Script())
    # 101 consults 102 on a second line: a new internal call with its own Linkedid.
    s.add(5.0, "Newchannel", _ch(B101, L2, state=4, num="101", exten="102"))
    s.add(5.0, "Newchannel", _ch(C102_CONSULT, L2, state=0, num="102", exten="s"))
    s.add(
        5.0, "DialBegin", _ch(B101, L2, num="101"), _ch(C102_CONSULT, L2, "Dest", state=0), DialString="102"
    )
    s.add(
        6.0,
        "DialEnd",
        _ch(B101, L2, num="101"),
        _ch(C102_CONSULT, L2, "Dest", num="102"),
        DialStatus="ANSWER",
    )
    s.add(6.0, "BridgeEnter", _ch(C102_CONSULT, L2, num="102"), BridgeUniqueid="B2", BridgeNumChannels="1")
    s.add(6.0, "BridgeEnter", _ch(B101, L2, num="101"), BridgeUniqueid="B2", BridgeNumChannels="2")
    target = _ch(C102_CONSULT, L2, "TransferTarget", num="102") if with_target_header else []
    s.add(
        8.0,
        "AttendedTransfer",
        [("Result", "Success")],
        _ch(A101, L1, "OrigTransferer", num="101"),
        [("OrigBridgeUniqueid", "B1"), ("OrigBridgeNumChannels", "2")],
        _ch(B101, L2, "SecondTransferer", num="101"),
        [("SecondBridgeUniqueid", "B2"), ("SecondBridgeNumChannels", "2")],
        [("DestType", "Bridge"), ("DestBridgeUniqueid", "B1")],
        _trunk(prefix="Transferee"),
        target,
        IsExternal="Yes",
    )
    moved = L1 if linkedid_moves else L2
    s.add(8.0, "BridgeLeave", _ch(C102_CONSULT, L2, num="102"), BridgeUniqueid="B2", BridgeNumChannels="1")
    s.add(8.0, "BridgeEnter", _ch(C102_CONSULT, moved, num="102"), BridgeUniqueid="B1", BridgeNumChannels="3")
    s.add(8.0, "BridgeLeave", _ch(A101, L1, num="101"), BridgeUniqueid="B1", BridgeNumChannels="2")
    s.add(8.0, "Hangup", _ch(A101, L1, num="101"), Cause="16")
    s.add(8.0, "BridgeLeave", _ch(B101, L2, num="101"), BridgeUniqueid="B2", BridgeNumChannels="0")
    s.add(8.0, "Hangup", _ch(B101, L2, num="101"), Cause="16")
    s.add(20.0, "BridgeLeave", _trunk(), BridgeUniqueid="B1", BridgeNumChannels="1")
    s.add(20.0, "Hangup", _trunk(), Cause="16")
    s.add(20.0, "Hangup", _ch(C102_CONSULT, moved, num="102"), Cause="16")
    state, effects = run(new_state("pbx1"), s.events())
    assert not state.calls
    assert not state.channels
    return [e.record for e in ended(effects)]


def test_attended_transfer_makes_the_target_the_owner() -> None:
    """101 consults 102 then completes the transfer: the client's call is owned by 102 and ends at 20 s."""
    records = _attended(with_target_header=True, linkedid_moves=True)
    client = _only(records, L1)
    assert client.answered_by == "102"
    assert client.extra["transferred_from"] == "101"
    assert client.direction is Direction.INBOUND
    assert client.talk_seconds == 18.0
    assert client.ended_at is not None
    consult = _only(records, L2)
    assert consult.direction is Direction.INTERNAL
    assert (consult.caller_number, consult.dialled, consult.answered_by) == ("101", "102", "102")


def test_attended_transfer_without_target_header_uses_the_second_bridge() -> None:
    """Older Asterisk sends no TransferTarget: the other party in the consultation bridge is the new owner."""
    records = _attended(with_target_header=False, linkedid_moves=True)
    assert _only(records, L1).answered_by == "102"


def test_attended_transfer_when_linkedid_does_not_move() -> None:
    """If the target keeps its own Linkedid both calls still end, and the client's call is owned by 102."""
    records = _attended(with_target_header=True, linkedid_moves=False)
    assert _only(records, L1).answered_by == "102"
    assert _only(records, L2).answered_by == "102"


def test_failed_transfer_changes_nothing() -> None:
    """A BlindTransfer with Result Fail leaves the owner as it was."""
    s = _inbound_answered_by_101(Script())
    s.add(
        5.0,
        "BlindTransfer",
        [("Result", "Fail")],
        _ch(A101, L1, "Transferer", num="101"),
        _trunk(prefix="Transferee"),
        Extension="102",
    )
    s.add(6.0, "Hangup", _ch(A101, L1, num="101"), Cause="16")
    s.add(6.0, "Hangup", _trunk(), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    assert _only([e.record for e in ended(effects)], L1).answered_by == "101"


def test_internal_call_between_extensions() -> None:
    """101 dials 102 who answers: an internal call, caller 101, rang 102, answered by 102."""
    lid = "1795470100.1"
    a = ("PJSIP/101-00000010", lid)
    b = ("PJSIP/102-00000011", "1795470100.2")
    s = Script()
    s.add(0.0, "Newchannel", _ch(a, lid, state=4, num="101", cid_name="Анна Смирнова", exten="102"))
    s.add(0.1, "Newchannel", _ch(b, lid, state=0, num="102", exten="s"))
    s.add(0.1, "DialBegin", _ch(a, lid, state=4, num="101"), _ch(b, lid, "Dest", state=0), DialString="102")
    s.add(3.0, "DialEnd", _ch(a, lid, num="101"), _ch(b, lid, "Dest", num="102"), DialStatus="ANSWER")
    s.add(9.0, "Hangup", _ch(b, lid, num="102"), Cause="16")
    s.add(9.0, "Hangup", _ch(a, lid, num="101"), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], lid)
    assert record.direction is Direction.INTERNAL
    assert (record.caller_number, record.caller_name, record.dialled) == ("101", "Анна Смирнова", "102")
    assert (record.rang, record.answered_by) == (("102",), "102")
    assert (record.ring_seconds, record.talk_seconds) == (3.0, 6.0)


def test_configured_trunk_with_numeric_name_is_not_an_extension() -> None:
    """An endpoint listed in ``trunks`` is a trunk even when its name is a short number."""
    lid = "1795470200.1"
    trunk = ("PJSIP/5000-00000020", lid)
    phone = ("PJSIP/103-00000021", "1795470200.2")
    s = Script()
    s.add(
        0.0,
        "Newchannel",
        _ch(trunk, lid, state=4, num="79035550000", context="from-trunk", exten="4951234567"),
    )
    s.add(0.1, "DialBegin", _ch(trunk, lid, state=4), _ch(phone, lid, "Dest", state=0), DialString="103")
    s.add(1.0, "DialEnd", _ch(trunk, lid), _ch(phone, lid, "Dest"), DialStatus="BUSY")
    s.add(1.0, "Hangup", _ch(phone, lid), Cause="17")
    s.add(1.2, "Hangup", _ch(trunk, lid), Cause="16")
    _, effects = run(new_state("pbx1", trunks={"5000"}), s.events())
    record = _only([e.record for e in ended(effects)], lid)
    assert record.direction is Direction.INBOUND
    assert record.caller_number == "+79035550000"
    assert record.rang == ("103",)
    assert record.outcome is Outcome.MISSED
    assert record.missed_reason == "busy"


def test_click_to_call_originate_is_outbound_answered_by_the_far_end() -> None:
    """An Originate rings 101 first (no caller channel), then 101 dials out: outbound, answered when the client is."""
    lid = "1795470300.1"
    phone = ("PJSIP/101-00000030", lid)
    trunk = ("PJSIP/trunk-00000031", "1795470300.2")
    s = Script()
    s.add(0.0, "Newchannel", _ch(phone, lid, state=0, num="89161110001", exten="s"))
    s.add(0.0, "DialBegin", _ch(phone, lid, "Dest", state=0), DialString="PJSIP/101")
    s.add(2.0, "DialEnd", _ch(phone, lid, "Dest"), DialStatus="ANSWER")
    s.add(2.1, "Newchannel", _ch(trunk, lid, state=0, context="from-trunk", exten="s"))
    s.add(
        2.1, "DialBegin", _ch(phone, lid), _ch(trunk, lid, "Dest", state=0), DialString="+79161110001@trunk"
    )
    s.add(6.0, "DialEnd", _ch(phone, lid), _ch(trunk, lid, "Dest"), DialStatus="ANSWER")
    s.add(10.0, "Hangup", _ch(trunk, lid), Cause="16")
    s.add(10.0, "Hangup", _ch(phone, lid), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], lid)
    assert record.direction is Direction.OUTBOUND
    assert (record.caller_number, record.dialled, record.rang) == ("101", "+79161110001", ())
    assert record.answered_by == "101"
    assert (record.ring_seconds, record.talk_seconds) == (6.0, 4.0)
    assert record.extra["party_number"] == "+79161110001"


def test_outbound_busy_is_missed_busy() -> None:
    """101 dials 89161110001 and the far end is busy: an unanswered outbound call, reason busy."""
    lid = "1795470400.1"
    phone = ("PJSIP/101-00000040", lid)
    trunk = ("PJSIP/trunk-00000041", "1795470400.2")
    s = Script()
    s.add(0.0, "Newchannel", _ch(phone, lid, state=4, num="101", exten="89161110001"))
    s.add(
        0.1,
        "DialBegin",
        _ch(phone, lid, state=4),
        _ch(trunk, lid, "Dest", state=0),
        DialString="+79161110001@trunk",
    )
    s.add(1.0, "DialEnd", _ch(phone, lid, state=4), _ch(trunk, lid, "Dest"), DialStatus="BUSY")
    s.add(1.0, "Hangup", _ch(trunk, lid), Cause="17")
    s.add(1.5, "Hangup", _ch(phone, lid), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], lid)
    assert record.direction is Direction.OUTBOUND
    assert record.dialled == "89161110001"
    assert record.outcome is Outcome.MISSED
    assert record.missed_reason == "busy"
    assert not [e for e in effects if isinstance(e, CallAnswered)]


def test_call_pickup_by_another_phone_makes_it_the_owner() -> None:
    """101 rings, 102 picks the call up (the ringing channel is renamed to 102's): answered by 102, 101 stops."""
    s = Script()
    s.add(1.0, "Newchannel", _trunk(state=4))
    s.add(1.0, "Newchannel", _ch(A101, L1, state=0, num="101", exten="s"))
    s.add(1.0, "DialBegin", _trunk(state=4), _ch(A101, L1, "Dest", state=0, num="101"), DialString="101")
    s.add(3.0, "Rename", [("Channel", A101[0]), ("Newname", "PJSIP/102-000000ff"), ("Uniqueid", A101[1])])
    picked = ("PJSIP/102-000000ff", A101[1])
    s.add(3.0, "DialEnd", _trunk(state=4), _ch(picked, L1, "Dest", num="102"), DialStatus="ANSWER")
    s.add(8.0, "Hangup", _ch(picked, L1, num="102"), Cause="16")
    s.add(8.0, "Hangup", _trunk(), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], L1)
    assert (record.answered_by, record.rang) == ("102", ("101",))
    stopped = [e for e in effects if isinstance(e, CallRingStopped)]
    assert [(e.extension, e.reason, e.answered_by) for e in stopped] == [("101", "answered_elsewhere", "102")]


def test_local_originate_click_to_call_is_outbound_placed_by_the_rung_phone() -> None:
    """Originate(Local/101@from-internal): ;2 rings 101 first, then ;1 dials out; outbound placed by 101."""
    lid = "1795470500.1"
    one = ("Local/101@from-internal-0000000a;1", lid)
    two = ("Local/101@from-internal-0000000a;2", "1795470500.2")
    phone = ("PJSIP/101-00000050", "1795470500.3")
    trunk = ("PJSIP/trunk-00000051", "1795470500.4")
    s = Script()
    s.add(0.0, "Newchannel", _ch(one, lid, state=0, exten="101", context="from-internal"))
    s.add(0.0, "Newchannel", _ch(two, lid, state=4, exten="101", context="from-internal"))
    s.add(0.0, "DialBegin", _ch(one, lid, "Dest", state=0), DialString="Local/101@from-internal")
    s.add(0.1, "Newchannel", _ch(phone, lid, state=0, num="101", exten="s"))
    s.add(0.1, "DialBegin", _ch(two, lid, state=4), _ch(phone, lid, "Dest", state=0), DialString="PJSIP/101")
    s.add(3.0, "DialEnd", _ch(two, lid), _ch(phone, lid, "Dest", num="101"), DialStatus="ANSWER")
    s.add(3.0, "DialEnd", _ch(one, lid, "Dest"), DialStatus="ANSWER")
    s.add(3.1, "Newchannel", _ch(trunk, lid, state=0, context="from-trunk", exten="s"))
    s.add(
        3.1,
        "DialBegin",
        _ch(one, lid),
        _ch(trunk, lid, "Dest", state=0),
        DialString="PJSIP/89161110001@trunk",
    )
    s.add(5.0, "DialEnd", _ch(one, lid), _ch(trunk, lid, "Dest"), DialStatus="ANSWER")
    for leg in (trunk, one, two, phone):
        s.add(9.0, "Hangup", _ch(leg, lid), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], lid)
    assert record.direction is Direction.OUTBOUND
    assert (record.caller_number, record.dialled, record.rang) == ("101", "89161110001", ())
    assert record.answered_by == "101"
    assert record.answered_at is not None
    assert record.talk_seconds == 4.0
    assert record.extra["party_number"] == "+79161110001"
    assert not [e for e in effects if isinstance(e, CallRingStopped)]


def _blind_transfer_out(
    s: Script, number: str, transferer: tuple[str, str], transferee: list[tuple[str, str]]
) -> None:
    """The transferer REFERs the call to ``number``; the transferee's channel dials it through the trunk (as the
    real trace blind-transfer-outside: BlindTransfer, then the transferee's own DialBegin to PJSIP/trunk)."""
    _blind_transfer(s, number, transferer, transferee)
    s.add(5.1, "Newchannel", _ch(OUT, L1, state=0, context="from-trunk", exten="s"))
    s.add(5.1, "DialBegin", transferee, _ch(OUT, L1, "Dest", state=0), DialString=f"PJSIP/{number}@trunk")
    s.add(7.0, "DialEnd", transferee, _ch(OUT, L1, "Dest"), DialStatus="ANSWER")
    s.add(7.0, "BridgeEnter", _ch(OUT, L1), BridgeUniqueid="B2", BridgeNumChannels="1")
    s.add(7.0, "BridgeEnter", transferee, BridgeUniqueid="B2", BridgeNumChannels="2")
    s.add(12.0, "Hangup", transferee, Cause="16")
    s.add(12.0, "Hangup", _ch(OUT, L1), Cause="16")


OUT = ("PJSIP/trunk-00000009", "1795470006.9")


def test_blind_transfer_to_a_short_outside_number_stays_with_the_manager() -> None:
    """101 blind-transfers the client to a 6-digit city number through the trunk: still 101's call (talk from
    101's answer), the number noted as transferred_to, no answer by it, never an extension."""
    s = _inbound_answered_by_101(Script())
    _blind_transfer_out(s, "234567", A101, _trunk())
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], L1)
    assert (record.answered_by, record.rang, record.outcome) == ("101", ("101",), Outcome.ANSWERED)
    assert record.transferred_to == "234567"
    assert "transferred_from" not in record.extra
    assert record.talk_seconds == 10.0
    assert [e.extension for e in effects if isinstance(e, CallAnswered)] == ["101"]


def test_an_outbound_call_blind_transferred_out_stays_the_placers() -> None:
    """101 calls a client out and blind-transfers them to a partner's mobile: answered by 101, noted in E.164."""
    phone = ("PJSIP/101-00000002", L1)
    client = ("PJSIP/trunk-00000003", "1795470000.3")
    s = Script()
    s.add(0.0, "Newchannel", _ch(phone, L1, state=4, num="101", exten="89161110001"))
    s.add(0.1, "Newchannel", _ch(client, L1, state=0, context="from-trunk", exten="s"))
    s.add(0.1, "DialBegin", _ch(phone, L1), _ch(client, L1, "Dest", state=0), DialString="89161110001@trunk")
    s.add(2.0, "DialEnd", _ch(phone, L1), _ch(client, L1, "Dest"), DialStatus="ANSWER")
    s.add(2.0, "BridgeEnter", _ch(phone, L1, num="101"), BridgeUniqueid="B1", BridgeNumChannels="1")
    s.add(2.0, "BridgeEnter", _ch(client, L1), BridgeUniqueid="B1", BridgeNumChannels="2")
    _blind_transfer_out(s, "89997770000", phone, _ch(client, L1))
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], L1)
    assert (record.direction, record.dialled, record.answered_by) == (
        Direction.OUTBOUND,
        "89161110001",
        "101",
    )
    assert record.transferred_to == "+79997770000"
    assert record.extra["party_number"] == "+79161110001"


def test_a_caller_id_the_dialplan_shows_the_transfer_target_leaves_the_clients_number() -> None:
    """The real blind transfer out (live/blind-transfer-outside) through [crmtel-webphone]'s outside branch, which
    sets the company's caller ID on the client's channel before dialling out: the record keeps the client's number
    and party (the NewCallerid after the answer is what the partner is shown, not who called)."""
    messages = load_messages("blind-transfer-outside", LIVE_TRACES_DIR)
    at = next(
        i
        for i, m in enumerate(messages)
        if m.message.event == "DialBegin" and "89997770128" in str(m.message)
    )
    origin = next(
        m
        for m in messages[at:]
        if m.message.event == "DialBegin" and m.message.get("Channel") == "PJSIP/trunk-00000000"
    )
    fields = [(k, v) for k, v in origin.message.headers if k in CHANNEL_FIELDS]
    company = [(k, "74950000000" if k == "CallerIDNum" else v) for k, v in fields]
    shown = TimedMessage(origin.t, Message((("Event", "NewCallerid"), *company, ("CID-CallingPres", "0"))))
    _, effects = run(new_state("pbx1"), to_events([*messages[:at], shown, *messages[at:]]))
    (done,) = ended(effects)
    assert (done.record.caller_number, done.record.answered_by) == ("+79035550031", "128")
    assert done.record.extra["party_number"] == "+79035550031"
    assert done.record.transferred_to == "+79997770128"


def test_a_colleague_the_call_was_transferred_to_forwarding_it_to_their_mobile_is_no_transfer_out() -> None:
    """101 blind-transfers the client to colleague 102, whose phone forwards (302) to 102's mobile, which answers
    through the trunk (recorded on Asterisk 22.10.1 by review26b: BlindTransfer Extension 129, then
    Local/89160000129@…;2 dials the trunk). The trunk dialled another number than the transfer's target: not a
    transfer out (transferred_to was 102's own mobile before) — the record the CDR path gives the same call."""
    s = _inbound_answered_by_101(Script())
    _blind_transfer(s, "102")
    phone = ("PJSIP/102-00000005", "1795470005.5")
    s.add(5.1, "Newchannel", _ch(phone, L1, state=0, num="102", exten="s"))
    s.add(5.1, "DialBegin", _trunk(), _ch(phone, L1, "Dest", state=0), DialString="PJSIP/102")
    s.add(5.2, "DialEnd", _trunk(), _ch(phone, L1, "Dest"), DialStatus="CANCEL", Forward="89160000102")
    s.add(5.2, "Hangup", _ch(phone, L1, num="102"), Cause="16")
    s.add(5.3, "Newchannel", _ch(OUT, L1, state=0, context="from-trunk", exten="s"))
    s.add(5.3, "DialBegin", _trunk(), _ch(OUT, L1, "Dest", state=0), DialString="PJSIP/89160000102@trunk")
    s.add(7.0, "DialEnd", _trunk(), _ch(OUT, L1, "Dest"), DialStatus="ANSWER")
    s.add(7.0, "BridgeEnter", _ch(OUT, L1), BridgeUniqueid="B2", BridgeNumChannels="1")
    s.add(7.0, "BridgeEnter", _trunk(), BridgeUniqueid="B2", BridgeNumChannels="2")
    s.add(12.0, "Hangup", _trunk(), Cause="16")
    s.add(12.0, "Hangup", _ch(OUT, L1), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    record = _only([e.record for e in ended(effects)], L1)
    assert record.transferred_to is None
    assert (record.answered_by, record.outcome) == ("101", Outcome.ANSWERED)
