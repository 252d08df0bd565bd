"""Click-to-call "via my mobile", pure: the Originate that rings the manager's mobile through the mobile Local
channel, the guard that lets only that exact shape (and a mobile the policy allows) through, and the dialplan's
word on why a mobile did not take the call."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from crmtel.ami.protocol import Message
from crmtel.config import DialRule, OriginateSettings
from crmtel.dial.guard import GuardedSender
from crmtel.dial.models import DialRequest, DialStatus, originate_fields, outcome

SETTINGS = OriginateSettings(
    dial_rules=(DialRule(prefix="+7", replace="8"),), outgoing_callerid="74950000051"
)
REQUEST = DialRequest(
    "crmtel-1", "pbx1", "151", "+79991110051", "89991110051", manager_login="anna",
    mobile="+79160000051", mobile_exten="89160000051",
)  # fmt: skip


class Recorder:
    """The PBX behind the guard: answers every action with Success and keeps what reached it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, str]]]] = []

    async def request(
        self, name: str, fields: Sequence[tuple[str, str]] = (), *, limit: float | None = None
    ) -> list[Message]:
        self.sent.append((name, list(fields)))
        return [Message((("Response", "Success"),))]


def test_the_mobile_originate_rings_the_local_channel_with_the_mobile_variables() -> None:
    """Channel Local/<ext>@crmtel-mobile, CRMTEL_MOBILE as dialled and in E.164, a timeout long enough for the
    mobile's ring and the prompt twice; the desk-phone click keeps PJSIP/<ext> and its own ring time."""
    fields = originate_fields(REQUEST, SETTINGS)
    head = {k: v for k, v in fields if k != "Variable"}
    variables = [v for k, v in fields if k == "Variable"]
    assert head["Channel"] == "Local/151@crmtel-mobile"
    assert head["Exten"] == "89991110051"
    assert int(head["Timeout"]) >= 120_000
    assert "CRMTEL_MOBILE=89160000051" in variables
    assert "CRMTEL_MOBILE_NUMBER=+79160000051" in variables
    desk = DialRequest("crmtel-2", "pbx1", "151", "+79991110051", "89991110051")
    head = {k: v for k, v in originate_fields(desk, SETTINGS) if k != "Variable"}
    assert head["Channel"] == "PJSIP/151"
    assert head["Timeout"] == str(SETTINGS.ring_seconds * 1000)


async def test_the_guard_passes_the_mobile_shape_and_nothing_forged_around_it() -> None:
    """crmtel's own mobile Originate reaches the PBX; a mobile that is not what the dial rules write, a premium
    mobile, a mobile channel without the mobile variables, or mobile variables on the desk phone's channel
    are refused before the PBX sees them."""
    pbx = Recorder()
    guard = GuardedSender("pbx1", pbx, SETTINGS, trunks=("trunk",))
    good = originate_fields(REQUEST, SETTINGS)
    assert (await guard.request("Originate", good))[0].response == "Success"

    def edited(name: str, value: str | None) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in good if not (k == "Variable" and v.startswith(f"{name}="))]
        return out + ([("Variable", f"{name}={value}")] if value is not None else [])

    forged = {
        "another number dialled": edited("CRMTEL_MOBILE", "89099999999"),
        "no E.164": edited("CRMTEL_MOBILE_NUMBER", "89160000051"),
        "no mobile number": edited("CRMTEL_MOBILE_NUMBER", None),
        "desk channel": [(k, "PJSIP/151" if k == "Channel" else v) for k, v in good],
        "a trunk": [(k, "Local/trunk@crmtel-mobile" if k == "Channel" else v) for k, v in good],
    }
    forged["premium mobile"] = [
        (k, v) for k, v in edited("CRMTEL_MOBILE_NUMBER", "+78091234567") if v != "CRMTEL_MOBILE=89160000051"
    ] + [("Variable", "CRMTEL_MOBILE=88091234567")]
    bare = [(k, v) for k, v in good if not (k == "Variable" and v.startswith("CRMTEL_MOBILE"))]
    forged["mobile channel without the mobile"] = bare
    for why, fields in forged.items():
        reply = await guard.request("Originate", fields)
        assert reply[0].response == "Error", why
    assert len(pbx.sent) == 1
    assert guard.refused == len(forged)


@pytest.mark.parametrize(
    ("value", "status"),
    [("unconfirmed", DialStatus.UNCONFIRMED), ("ANSWER", DialStatus.UNCONFIRMED), ("NOANSWER", DialStatus.NO_ANSWER),
     ("BUSY", DialStatus.BUSY), ("nomobile", DialStatus.FAILED)],
)  # fmt: skip
def test_the_dialplans_word_on_the_mobile_decides_a_failure(value: str, status: DialStatus) -> None:
    """CRMTEL_DIAL_RESULT on the originated channel (extensions_crmtel_mobile.conf) beats the Local channel's
    uninformative Hangup cause: "unconfirmed" is the mobile answering without a 1."""
    ok = Message((("Response", "Success"),))
    failure = Message((("Event", "OriginateResponse"), ("Response", "Failure"), ("Reason", "0")))
    said = Message(
        (("Event", "VarSet"), ("Uniqueid", "1.1"), ("Variable", "CRMTEL_DIAL_RESULT"), ("Value", value))
    )
    hangup = Message((("Event", "Hangup"), ("Uniqueid", "1.1"), ("Cause", "0")))
    assert outcome([ok, failure, said, hangup])[0] is status
