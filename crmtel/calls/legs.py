"""What a channel is: a manager's phone (and whose), a trunk, a ``Local/`` half, or something else.

One classifier for every path that builds a call (the live tracker, the CDR backfill, replay).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

# A manager's phone is a channel whose endpoint is a short number (PJSIP/101-00000001).
_EXTENSION_RE = re.compile(r"^\d{2,6}$", re.ASCII)
# Channel technologies that are never a person on a phone line.
_NON_VOICE_TECHS = frozenset(
    {"announcer", "recorder", "confbridge", "message", "snoop", "bridgemedia", "multicastrtp", "unicastrtp"}
)
_NON_DIALLED_EXTENS = frozenset({"s", "h", "i", "t", "o", "a", "e", "start"})


class LegKind(enum.StrEnum):
    """What kind of party a channel is."""

    EXTENSION = "extension"
    TRUNK = "trunk"
    LOCAL = "local"
    OTHER = "other"


def local_base(name: str) -> str | None:
    """``Local/101@from-internal-00000001;2`` -> ``Local/101@from-internal-00000001`` (None if not Local)."""
    if not name.lower().startswith("local/"):
        return None
    return name.split(";", 1)[0]


def split_channel_name(name: str) -> tuple[str, str]:
    """``PJSIP/101-0000000f`` -> (``pjsip``, ``101``); ``Local/104@agents-00000000;1`` -> (``local``, ``104@agents``)."""
    tech, sep, rest = name.partition("/")
    if not sep:
        return tech.lower(), ""
    for marker in ("<ZOMBIE>", "<MASQ>"):
        rest = rest.replace(marker, "")
    rest = rest.split(";", 1)[0]
    base, dash, _ = rest.rpartition("-")
    endpoint = base if dash else rest
    return tech.lower(), endpoint


def classify(
    name: str,
    trunks: frozenset[str],
    device_prefixes: tuple[str, ...] = (),
    known: frozenset[str] = frozenset(),
) -> tuple[LegKind, str | None]:
    """The kind of a channel and, for a manager's phone, its extension (a user's other device counts as the
    user, unless the device is itself one of the ``known`` extensions)."""
    tech, endpoint = split_channel_name(name)
    if tech == "local":
        return LegKind.LOCAL, None
    if tech in _NON_VOICE_TECHS or not endpoint:
        return LegKind.OTHER, None
    if endpoint in trunks:
        return LegKind.TRUNK, None
    if _EXTENSION_RE.match(endpoint):
        return LegKind.EXTENSION, user_extension(endpoint, device_prefixes, known)
    # Named endpoints (``trunk``, ``provider``) are lines to the outside world.
    return LegKind.TRUNK, None


def user_extension(device: str, device_prefixes: tuple[str, ...], known: frozenset[str] = frozenset()) -> str:
    """``99101`` -> ``101`` when ``99`` is a device prefix (FreePBX's WebRTC device of user 101), else the device.

    A device that is itself a ``known`` extension (desk phone 9913 of another manager beside extension 13) is
    that phone, never extension 13's browser device: crmtel generates no browser phone with such a name."""
    if device in known:
        return device
    for prefix in device_prefixes:
        rest = device[len(prefix) :]
        if device.startswith(prefix) and _EXTENSION_RE.match(rest):
            return rest
    return device


def forwarded_taker(rang: Sequence[str], forwarded_by: str | None) -> str | None:
    """Who answered an inbound call that was answered out through a trunk (forwarding, follow-me).

    The manager whose phone forwarded it (a ``DialEnd`` with ``Forward``: the phone's 302 or call forwarding),
    else the manager whose phone rang last before it went out (a dialplan follow-me rings the desk phone,
    then the mobile); None when no manager's phone was offered the call (an inbound call sent to an outside
    number by the dialplan alone is nobody's answer).
    """
    if forwarded_by is not None:
        return forwarded_by
    return rang[-1] if rang else None


def dialled_number(exten: str | None) -> str | None:
    """A dialplan extension that is a real number (not ``s``/``h``…), else None."""
    if exten is None or exten.lower() in _NON_DIALLED_EXTENS:
        return None
    if not any(ch.isdigit() for ch in exten):
        return None
    return exten[:64]


def number_from_dial_string(dial_string: str | None) -> str | None:
    """The number in ``+79161110001@trunk``, ``PJSIP/+7916…@trunk`` or ``SIP/trunk/8916…``."""
    if not dial_string:
        return None
    text = dial_string.split("&", 1)[0].split(",", 1)[0]
    text = text.split("@", 1)[0]
    text = text.rsplit("/", 1)[-1]
    return dialled_number(text.strip())
