"""An endpoint sync: managers -> credentials -> the PJSIP include file -> res_pjsip reloaded on the PBX.

Run by `crmtel config webphone-endpoints` and after every `crmtel manager` change, so a new password or a
deactivation replaces the manager's browser-phone credential on the PBX at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from crmtel.ami.client import AmiClient, AmiError, LoginFailed
from crmtel.ami.protocol import Message
from crmtel.config import Settings
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.sip_credentials import SipCredentialRepository
from crmtel.webphone.service import Flavour, freepbx_owned, pjsip_endpoints, plan_sync

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a sync did (counts only: nothing of a credential)."""

    text: str
    endpoints: int
    drawn: int
    dropped: int
    written: Path | None
    reloaded: bool
    clashes: tuple[str, ...] = ()


def flavour_of(settings: Settings, flavour: Flavour | None = None) -> Flavour:
    """The PBX kind the endpoints are written for: as asked, else the first PBX's ``[ami] flavour``."""
    if flavour is not None:
        return flavour
    return settings.pbxes[0].flavour if settings.pbxes else "asterisk"


async def render(
    settings: Settings, db: Database, flavour: Flavour = "asterisk"
) -> tuple[str, int, int, int, tuple[str, ...]]:
    """Bring the stored credentials in line with the managers and return the include file's text (and the
    managers left without a browser phone because its device is another phone's extension)."""
    managers = await ManagerRepository(db).all()
    credentials = SipCredentialRepository(db)
    plan = plan_sync(managers, await credentials.all(), settings.webphone.realm)
    if plan.new or plan.dropped:
        await credentials.apply(plan.new, plan.dropped)
    return (
        pjsip_endpoints(plan.endpoints, settings.webphone, flavour=flavour),
        len(plan.endpoints),
        len(plan.new),
        len(plan.dropped),
        plan.clashes,
    )


async def pending(settings: Settings, db: Database) -> tuple[int, int]:
    """How many credentials a sync would draw and drop now (read only: nothing is stored)."""
    managers = await ManagerRepository(db).all()
    plan = plan_sync(managers, await SipCredentialRepository(db).all(), settings.webphone.realm)
    return len(plan.new), len(plan.dropped)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner and group can read (it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Nowhere:
    """A one-shot reload reads no events worth keeping."""

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        """Dropped."""

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        """Dropped."""

    async def on_idle(self, pbx: str) -> None:
        """Nothing to do."""

    async def on_lost(self, pbx: str, at: datetime) -> None:
        """Nothing to do."""


async def reload_module(settings: Settings, module: str, what: str) -> None:
    """``Reload <module>`` over AMI on the first PBX (the browser phones' and mobiles'); CrmtelError if refused."""
    if not settings.pbxes:
        raise CrmtelError(f"no PBX is configured to reload {module} on")
    pbx = settings.pbxes[0]
    client = AmiClient(pbx, _Nowhere())
    try:
        (reply,) = await client.probe([("Reload", (("Module", module),))])
    except LoginFailed as err:
        raise CrmtelError(f"PBX {pbx.name} refused the AMI login: {err}") from err
    except (OSError, TimeoutError, AmiError) as err:
        raise CrmtelError(f"cannot reach the AMI of PBX {pbx.name}: {err}") from err
    first = reply[0] if reply else None
    if first is None or first.response != "Success":
        why = first.get("Message") if first is not None else "no answer"
        raise CrmtelError(
            f"PBX {pbx.name} did not reload {module} ({why}): crmtel's AMI user needs the write class "
            f'"system" for {what} (deploy/asterisk/manager.d/crmtel.conf)'
        )


async def reload_pjsip(settings: Settings) -> None:
    """``Reload res_pjsip.so`` over AMI on the browser phone's PBX (the first one); CrmtelError if refused."""
    await reload_module(settings, "res_pjsip.so", "the browser phone")


async def sync_endpoints(
    settings: Settings, db: Database, *, reload: bool | None = None, flavour: Flavour | None = None
) -> SyncResult:
    """Draw/drop credentials, write ``webphone.endpoints_file`` (if set) and reload res_pjsip (if asked).

    For FreePBX (``flavour``, else the first PBX's) a file FreePBX rewrites on "Apply Config" is refused before
    anything changes: the endpoints would vanish at the next reload and the managers' pages lose their phone."""
    kind = flavour_of(settings, flavour)
    target = settings.webphone.endpoints_file
    if kind == "freepbx" and target is not None and freepbx_owned(target):
        raise CrmtelError(
            f"{target} is FreePBX's own file (rewritten on every Apply Config): write the browser phones to "
            "/etc/asterisk/pjsip_crmtel_webphone.conf and #include it from pjsip_custom_post.conf"
        )
    text, endpoints, drawn, dropped, clashes = await render(settings, db, kind)
    for clash in clashes:
        log.warning("webphone: no browser phone for %s", clash)
    written = None
    if target is not None:
        await asyncio.to_thread(write_private, target, text)
        written = target
    do_reload = settings.webphone.reload if reload is None else reload
    reloaded = False
    if written is not None and do_reload:
        await reload_pjsip(settings)
        reloaded = True
    log.info(
        "webphone: %d endpoint(s), %d credential(s) drawn, %d dropped%s%s",
        endpoints, drawn, dropped, f", written to {written}" if written else "", ", res_pjsip reloaded" if reloaded else "",
    )  # fmt: skip
    return SyncResult(text, endpoints, drawn, dropped, written, reloaded, clashes)
