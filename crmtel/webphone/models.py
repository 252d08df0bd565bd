"""The browser phone's data: a manager's device credential and what the page is given to register with."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SipCredential:
    """A manager's browser-phone device and the digest hash both Asterisk and the browser authenticate with.

    ``ha1`` is md5(device:realm:secret) of a random secret nobody keeps. It is as good as a password for this
    realm, so it is never shown in a repr, a log line or ``config show``.
    """

    manager_id: int
    device: str
    realm: str
    ha1: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One generated PJSIP endpoint: the credential and whose phone it is."""

    credential: SipCredential
    extension: str
    name: str
    login: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What an endpoint sync changes in the store: credentials to draw anew and ones to drop."""

    endpoints: tuple[Endpoint, ...]
    new: tuple[SipCredential, ...]
    dropped: tuple[int, ...]  # manager ids whose credential goes (inactive, no extension, device taken)
    # "login: 99<ext> is extension 99<ext> of <login>": managers who get no browser phone because its device
    # name is another phone's extension (an endpoint of that name would replace the desk phone's on the PBX).
    clashes: tuple[str, ...] = ()
