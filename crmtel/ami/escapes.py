"""Undo the C escaping Asterisk applies to some AMI values (``ast_escape_c`` in ``main/utils.c``).

Asterisk 22 escapes a channel's ``CallerIDName``/``ConnectedLineName`` (every channel snapshot, under any
prefix) and a ``VarSet`` ``Value`` with ``ast_escape_c``: ``\\a \\b \\f \\n \\r \\t \\v \\\\ \\' \\" \\?``
stand for the characters they name, and nothing else is touched (UTF-8 bytes pass through, so a Cyrillic
name arrives as it is, only its quotes escaped). ``O'Brien`` arrives as ``O\\'Brien``. crmtel unescapes these
values once, where AMI messages become typed events, and nowhere else.
"""

from __future__ import annotations

import re

# ast_escape_c's table: escape letter -> the character it stands for.
_SEQUENCES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _replace(match: re.Match[str]) -> str:
    # A backslash before anything Asterisk never escapes is not an escape: keep both characters.
    return _SEQUENCES.get(match.group(1), match.group(0))


def unescape_c(value: str) -> str:
    """The value before ``ast_escape_c``: ``O\\'Brien`` -> ``O'Brien``; unknown sequences are kept as they are."""
    if "\\" not in value:
        return value
    return _ESCAPE.sub(_replace, value)
