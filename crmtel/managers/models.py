"""A manager's own settings, pure: the mobile number the PBX may ring for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers

from crmtel.config import OriginateSettings, Settings
from crmtel.dial.models import dial_string, serves
from crmtel.dial.policy import check_number
from crmtel.domain import Manager
from crmtel.errors import CrmtelError
from crmtel.phones import PhoneKind, normalize

# What a number may be to serve as a manager's phone on the road: a line a person answers, never a premium,
# shared-cost or toll-free service (the PBX pays for dialling it, and nobody presses 1 there).
_PERSONAL_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
    }
)


class BadMobile(CrmtelError):
    """A mobile number crmtel will not keep; ``key`` is the catalogue message (``settings.mobile.*``)."""

    def __init__(self, key: str, text: str, pbx: str | None = None) -> None:
        why = (
            f"PBX {pbx}'s click-to-call policy refuses it"
            if pbx
            else "not a phone number a manager can answer"
        )
        super().__init__(f"{text[:40]!r}: {why} ({key})")
        self.key = key
        self.pbx = pbx


def parse_mobile(text: str | None, region: str = "RU") -> str | None:
    """The manager's mobile in E.164 (``8 916 111-00-01`` -> ``+79161110001``); None for an empty text
    (no mobile); BadMobile for an extension, garbage, a number with an extension suffix, or a number that is
    not a personal line."""
    value = (text or "").strip()
    if not value:
        return None
    if _extension_suffix(value, region):
        # The PBX dials the E.164 number only (no post-answer digits), so ``;ext=5`` / ``доб. 5`` would be
        # dropped silently and the call land on the switchboard: refuse it rather than keep half a number.
        raise BadMobile("settings.mobile.extension_suffix", value)
    phone = normalize(value, region)
    if phone.kind is PhoneKind.EXTENSION:
        raise BadMobile("settings.mobile.extension", value)
    if phone.kind is not PhoneKind.E164 or phone.e164 is None:
        raise BadMobile("settings.mobile.invalid", value)
    parsed = phonenumbers.parse(phone.e164)
    if not phonenumbers.is_valid_number(parsed):
        raise BadMobile("settings.mobile.invalid", value)
    if phonenumbers.number_type(parsed) not in _PERSONAL_TYPES:
        raise BadMobile("settings.mobile.not_personal", value)
    return phone.e164


def _extension_suffix(value: str, region: str) -> bool:
    """Whether the text carries an extension after the number (``;ext=5``, ``доб. 5``, ``x5``, ``#5``)."""
    try:
        return bool(phonenumbers.parse(value, region).extension)
    except phonenumbers.NumberParseException:
        return False


@dataclass(frozen=True, slots=True)
class MobilePolicy:
    """What a manager's mobile must be to be kept: a personal line (``parse_mobile``) that the click-to-call
    policy (``originate.allow``/``deny``) of the PBXs ringing the manager lets crmtel dial — otherwise "via my
    mobile" and follow-me would refuse it later, after the manager believed it set."""

    region: str = "RU"
    pbxes: tuple[tuple[str, OriginateSettings], ...] = (("pbx1", OriginateSettings()),)

    @classmethod
    def of(cls, settings: Settings) -> MobilePolicy:
        """The policy of this config's enabled PBXs."""
        return cls(settings.region, tuple((p.name, p.originate) for p in settings.pbxes))

    def parse(self, text: str | None, extensions: Sequence[str] = ()) -> str | None:
        """``parse_mobile``, then BadMobile(``settings.mobile.not_allowed``) when a PBX serving one of the
        manager's ``extensions`` (every PBX when none claims them) refuses to dial it."""
        mobile = parse_mobile(text, self.region)
        if mobile is None:
            return None
        claimed = [(n, o) for n, o in self.pbxes if any(serves(o, ext) for ext in extensions)]
        for name, originate in claimed or self.pbxes:
            if check_number(mobile, PhoneKind.E164, originate) is not None:
                raise BadMobile("settings.mobile.not_allowed", (text or "").strip(), name)
        return mobile


def mobile_globals(
    managers: Sequence[Manager], originate: OriginateSettings
) -> tuple[list[str], list[tuple[Manager, str]]]:
    """``CRMTEL_MOBILE_<extension>=<the mobile as the PBX dials it>`` for every active manager with a mobile,
    one line per extension: the follow-me step of the inbound dialplan reads ``CRMTEL_MOBILE_${target}``.

    A mobile this PBX's click-to-call policy refuses (``originate.allow``/``deny``: another country, premium)
    gets no line — the PBX would ring it for every unanswered call, the toll fraud the policy keeps out of
    click-to-call — and is returned with the policy's reason instead."""
    lines: list[str] = []
    refused: list[tuple[Manager, str]] = []
    for manager in sorted(managers, key=lambda m: m.login):
        if not manager.active or not manager.mobile:
            continue
        verdict = check_number(manager.mobile, PhoneKind.E164, originate)
        if verdict is not None:
            refused.append((manager, verdict.key))
            continue
        dialled = dial_string(manager.mobile, originate.dial_rules)
        lines.extend(f"CRMTEL_MOBILE_{extension}={dialled}" for extension in sorted(manager.extensions))
    return lines, refused
