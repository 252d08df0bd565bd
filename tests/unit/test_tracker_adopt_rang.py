"""A call adopted from CoreShowChannels (crmtel came back mid-call) lists the phones already on it as rung."""

from __future__ import annotations

from datetime import timedelta

from crmtel.ami import events as ev
from crmtel.ami.protocol import Message
from crmtel.calls.tracker import new_state, resync
from crmtel.fakepbx.server import ChannelBook
from tests.fixtures.traces import BASE_TIME, TimedMessage, load_messages, to_events


def test_phones_ringing_when_crmtel_comes_back_count_as_offered_in_channel_age_order() -> None:
    """Both ring-all phones are ringing at the reconnect: the adopted call has rang 102, 103 (oldest first)."""
    messages = load_messages("queue-ringall-answered")
    book = ChannelBook()
    cut = next(
        i
        for i, m in enumerate(messages)
        if m.message.event == "DialBegin" and (m.message.get("DestChannel") or "").startswith("PJSIP/103")
    )
    for item in messages[: cut + 1]:
        book.apply(item.t, item.message)
    now = messages[cut].t + 0.5
    listing = [Message(h) for h in book.listing(now, "1")]
    channels = [e for e in to_events_of(listing, now) if isinstance(e, ev.CoreShowChannel)]
    state, _ = resync(new_state("pbx1"), channels, BASE_TIME + timedelta(seconds=now))
    (call,) = state.calls.values()
    assert call.rang == ("102", "103")
    assert call.placed_by is None


def to_events_of(messages: list[Message], t: float) -> list[ev.AmiEvent]:
    return list(to_events([TimedMessage(t, m) for m in messages]))
