"""AMI values Asterisk C-escapes (names, VarSet values) are unescaped once, where messages become events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmtel.ami import events as ev
from crmtel.ami.escapes import unescape_c
from crmtel.ami.events import parse_event
from crmtel.ami.protocol import Message
from tests.fixtures.callerid import ast_escape_c
from tests.fixtures.traces import load_messages

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wire", "plain"),
    [
        ("O\\'Brien & Sons", "O'Brien & Sons"),
        ('ООО \\"Ромашка\\"', 'ООО "Ромашка"'),
        ("Иван Петров", "Иван Петров"),
        ("C:\\\\calls\\\\new", "C:\\calls\\new"),
        ("line\\nbreak\\ttab", "line\nbreak\ttab"),
        ("why\\?", "why?"),
        ("\\a\\b\\f\\r\\v", "\a\b\f\r\v"),
        # Never produced by Asterisk: kept as they are, not guessed at.
        ("50\\% off \\x41", "50\\% off \\x41"),
        ("ends with \\", "ends with \\"),
    ],
)
def test_each_ast_escape_c_sequence_is_undone(wire: str, plain: str) -> None:
    """Every sequence of ast_escape_c's table maps back to its character; anything else is left alone."""
    assert unescape_c(wire) == plain


@given(st.text(max_size=60))
def test_unescape_undoes_asterisks_escaping_of_any_text(text: str) -> None:
    """For any name, unescape_c(ast_escape_c(name)) is the name: the round trip loses nothing."""
    assert unescape_c(ast_escape_c(text)) == text


def _with(message: Message, **values: str) -> Message:
    return Message(tuple((key, values.get(key, value)) for key, value in message.headers))


def test_real_newchannel_with_escaped_names_parses_to_plain_names() -> None:
    """A real Newchannel whose CallerIDName/ConnectedLineName Asterisk escaped carries the plain names."""
    first = next(m.message for m in load_messages("direct-answered") if m.message.event == "Newchannel")
    message = _with(
        first,
        CallerIDName=ast_escape_c("O'Brien & Sons"),
        ConnectedLineName=ast_escape_c('ООО "Ромашка"'),
    )
    event = parse_event(message, AT)
    assert isinstance(event, ev.Newchannel)
    assert event.channel.caller_name == "O'Brien & Sons"
    assert event.channel.connected_name == 'ООО "Ромашка"'


def test_dest_snapshot_names_are_unescaped_too() -> None:
    """The ``Dest`` snapshot of a real DialBegin is unescaped like the main one."""
    first = next(m.message for m in load_messages("direct-answered") if m.message.event == "DialBegin")
    message = _with(first, DestConnectedLineName=ast_escape_c("D'Artagnan \\ Co"))
    event = parse_event(message, AT)
    assert isinstance(event, ev.DialBegin)
    assert event.dest.connected_name == "D'Artagnan \\ Co"


def test_varset_value_is_unescaped_and_other_fields_are_not() -> None:
    """A route reason set by the dialplan arrives escaped and is stored plain; dial strings keep backslashes."""
    first = next(
        m.message
        for m in load_messages("direct-answered")
        if m.message.event == "VarSet" and m.message.get("Variable") == "CRMTEL_ROUTE_KIND"
    )
    reason = "personal manager of client 'O'Brien & Sons'"
    message = _with(first, Variable="CRMTEL_ROUTE_REASON", Value=ast_escape_c(reason))
    event = parse_event(message, AT)
    assert isinstance(event, ev.VarSet)
    assert event.value == reason
    dial = next(m.message for m in load_messages("direct-answered") if m.message.event == "DialBegin")
    parsed = parse_event(_with(dial, DialString="PJSIP/101\\x"), AT)
    assert isinstance(parsed, ev.DialBegin)
    assert parsed.dial_string == "PJSIP/101\\x"
