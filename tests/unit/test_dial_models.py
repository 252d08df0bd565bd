"""Click-to-call's pure parts: dial rules, the PBX's answers mapped to statuses, and failed Originates in the
tracker (no record) next to a click-to-call that dials out (its card on the placing phone, linked by id)."""

from __future__ import annotations

from crmtel.ami.protocol import Message
from crmtel.calls.tracker import new_state
from crmtel.config import DialRule, OriginateSettings
from crmtel.dial.models import DialRequest, DialStatus, dial_string, originate_fields, outcome, serves
from crmtel.domain import CallDiscarded, CallEnded, CallRinging, Direction
from tests.fixtures.traces import Script, run

RU = (DialRule(prefix="+7", replace="8"), DialRule(prefix="+", replace="810"))


def test_dial_rules_rewrite_by_the_first_matching_prefix() -> None:
    """+7… is dialled 8…, other countries 810…; without rules the E.164 number is dialled as it is."""
    assert dial_string("+79161110001", RU) == "89161110001"
    assert dial_string("+442071234567", RU) == "810442071234567"
    assert dial_string("+79161110001", ()) == "+79161110001"
    assert dial_string("104", RU) == "104"


def test_originate_response_reasons_become_statuses() -> None:
    """Response Error is a refusal with the PBX's words; OriginateResponse reasons map to what happened."""
    ok = Message((("Response", "Success"), ("Message", "Originate successfully queued")))

    def event(response: str, reason: str) -> Message:
        return Message((("Event", "OriginateResponse"), ("Response", response), ("Reason", reason)))

    assert outcome([Message((("Response", "Error"), ("Message", "Permission denied")))]) == (
        DialStatus.REFUSED,
        "Permission denied",
    )
    assert outcome([ok, event("Success", "4")]) == (DialStatus.ANSWERED, None)
    expected = {"0": DialStatus.FAILED, "1": DialStatus.REJECTED, "3": DialStatus.NO_ANSWER}
    expected |= {"5": DialStatus.BUSY, "8": DialStatus.CONGESTED, "junk": DialStatus.FAILED}
    for reason, status in expected.items():
        assert outcome([ok, event("Failure", reason)])[0] is status
    assert outcome([]) == (DialStatus.TIMEOUT, None)


def test_a_failure_with_reason_0_takes_the_phone_channels_end() -> None:
    """Asterisk 22 answers Reason 0 for a busy or declined phone: the channel's Hangup cause (then its DialEnd)
    that the reply carries after the OriginateResponse decides; nothing after it is 'not registered'."""
    ok = Message((("Response", "Success"), ("Message", "Originate successfully queued")))
    failure = Message((("Event", "OriginateResponse"), ("Response", "Failure"), ("Reason", "0")))

    def dial_end(status: str) -> Message:
        return Message((("Event", "DialEnd"), ("DestUniqueid", "1.1"), ("DialStatus", status)))

    def hangup(cause: str) -> Message:
        return Message((("Event", "Hangup"), ("Uniqueid", "1.1"), ("Cause", cause)))

    assert outcome([ok, failure, dial_end("BUSY"), hangup("17")])[0] is DialStatus.BUSY
    assert outcome([ok, failure, dial_end("NOANSWER"), hangup("21")])[0] is DialStatus.REJECTED
    assert outcome([ok, failure, dial_end("BUSY"), hangup("16")])[0] is DialStatus.BUSY
    assert outcome([ok, failure, hangup("19")])[0] is DialStatus.NO_ANSWER
    assert outcome([ok, failure])[0] is DialStatus.FAILED


def test_callerid_shows_the_party_without_breaking_the_header() -> None:
    """Quotes and angle brackets in a client's name never reach the CallerID; the channel is configurable."""
    settings = OriginateSettings(channel="Local/{extension}@from-internal", outgoing_callerid="+74951234567")
    request = DialRequest("crmtel-1", "pbx1", "101", "+79161110001", "89161110001", name='<ООО "Ромашка">')
    fields = dict((k, v) for k, v in originate_fields(request, settings) if k != "Variable")
    assert fields["CallerID"] == "ООО Ромашка <89161110001>"
    assert fields["Channel"] == "Local/101@from-internal"
    variables = [v for k, v in originate_fields(request, settings) if k == "Variable"]
    assert "CRMTEL_OUTBOUND_CALLERID=+74951234567" in variables
    assert serves(OriginateSettings(extensions=("1??",)), "101")
    assert not serves(OriginateSettings(extensions=("1??",)), "201")


def _phone(lid: str, name: str = "PJSIP/101-00000030") -> list[tuple[str, str]]:
    return Script.channel(name, lid, lid, state=0, num="<unknown>", cid_name="<unknown>", exten="s")


def test_originate_the_phone_did_not_answer_leaves_no_record() -> None:
    """Originate rings 101, nobody picks up: the tracker discards it instead of a missed internal call."""
    lid = "1795470300.1"
    s = Script()
    s.add(0.0, "Newchannel", _phone(lid))
    s.add(0.0, "VarSet", _phone(lid), Variable="CRMTEL_ORIGINATE_ID", Value="crmtel-1")
    s.add(
        0.0,
        "DialBegin",
        Script.channel("PJSIP/101-00000030", lid, lid, prefix="Dest", state=0),
        DialString="PJSIP/101",
    )
    s.add(
        30.0, "DialEnd", Script.channel("PJSIP/101-00000030", lid, lid, prefix="Dest"), DialStatus="NOANSWER"
    )
    s.add(30.0, "Hangup", _phone(lid), Cause="19")
    _, effects = run(new_state("pbx1"), s.events())
    assert not [e for e in effects if isinstance(e, CallEnded)]
    assert [(e.linkedid, e.originate_id) for e in effects if isinstance(e, CallDiscarded)] == [
        (lid, "crmtel-1")
    ]


def test_originate_to_a_missing_endpoint_leaves_no_record() -> None:
    """Asterisk's OutgoingSpoolFailed stand-in channel (no technology, no caller) is not a call."""
    lid = "1795470301.1"
    s = Script()
    chan = _phone(lid, name="OutgoingSpoolFailed")
    s.add(0.0, "Newchannel", chan)
    s.add(0.0, "Hangup", chan, Cause="0")
    _, effects = run(new_state("pbx1"), s.events())
    assert not [e for e in effects if isinstance(e, CallEnded)]
    assert len([e for e in effects if isinstance(e, CallDiscarded)]) == 1


def test_click_to_call_shows_its_card_on_the_placing_phone_once() -> None:
    """When the originated phone dials out, one outbound call.ringing for 101 carries the originate id."""
    lid = "1795470302.1"
    trunk = ("PJSIP/trunk-00000031", "1795470302.2")
    s = Script()
    s.add(0.0, "Newchannel", _phone(lid))
    s.add(0.0, "VarSet", _phone(lid), Variable="CRMTEL_ORIGINATE_ID", Value="crmtel-2")
    s.add(
        0.0,
        "DialBegin",
        Script.channel("PJSIP/101-00000030", lid, lid, prefix="Dest", state=0),
        DialString="PJSIP/101",
    )
    s.add(2.0, "DialEnd", Script.channel("PJSIP/101-00000030", lid, lid, prefix="Dest"), DialStatus="ANSWER")
    s.add(
        2.1, "Newchannel", Script.channel(trunk[0], trunk[1], lid, state=0, context="from-trunk", exten="s")
    )
    s.add(
        2.1,
        "DialBegin",
        Script.channel("PJSIP/101-00000030", lid, lid),
        Script.channel(trunk[0], trunk[1], lid, prefix="Dest", state=0),
        DialString="89161110001@trunk",
    )
    s.add(
        4.0,
        "DialEnd",
        Script.channel("PJSIP/101-00000030", lid, lid),
        Script.channel(trunk[0], trunk[1], lid, prefix="Dest"),
        DialStatus="ANSWER",
    )
    s.add(6.0, "Hangup", Script.channel(trunk[0], trunk[1], lid), Cause="16")
    s.add(6.0, "Hangup", _phone(lid), Cause="16")
    _, effects = run(new_state("pbx1"), s.events())
    rings = [e for e in effects if isinstance(e, CallRinging)]
    assert [(e.extension, e.direction, e.dialled, e.originate_id) for e in rings] == [
        ("101", Direction.OUTBOUND, "89161110001", "crmtel-2")
    ]
    (ended,) = [e.record for e in effects if isinstance(e, CallEnded)]
    assert (ended.originate_id, ended.answered_by, ended.rang) == ("crmtel-2", "101", ())
