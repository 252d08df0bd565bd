"""The follow-me globals sync: managers -> ``CRMTEL_MOBILE_<ext>`` lines -> ``mobile.globals_file`` -> the
dialplan reloaded on the PBX.

Run whenever a mobile, an extension or an activity may have changed (the manager's page, `crmtel manager`,
`crmtel import managers`, `crmtel config mobile-globals`), so follow-me rings the mobile the manager has now.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from crmtel.config import Settings
from crmtel.errors import CrmtelError
from crmtel.managers.models import mobile_globals
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.webphone.sync import reload_module, write_private

log = logging.getLogger(__name__)

_KEY = re.compile(r"^(CRMTEL_MOBILE_[0-9A-Za-z*#+_-]+)=", re.MULTILINE)
_HEADER = (
    "; Written by crmtel (mobile.globals_file): the mobiles follow-me rings, one per extension. Do not edit:\n"
    "; every change of a manager's mobile rewrites it. #tryinclude it inside [globals].\n"
)


@dataclass(frozen=True, slots=True)
class MobileSync:
    """What a sync did."""

    text: str
    mobiles: int
    written: Path | None
    reloaded: bool


def globals_file_text(lines: list[str], cleared: set[str], previous: str = "") -> str:
    """The file: ``lines``, then ``KEY=`` for every key in ``cleared`` or in ``previous`` that has no line now.

    A dialplan reload keeps a global the file no longer sets (``clearglobalvars = no``, Asterisk's default),
    so a removed mobile is written empty: follow-me then finds none and goes on to the queue."""
    kept = {line.split("=", 1)[0] for line in lines}
    gone = (cleared | set(_KEY.findall(previous))) - kept
    return _HEADER + "".join(f"{line}\n" for line in lines) + "".join(f"{key}=\n" for key in sorted(gone))


async def render(settings: Settings, db: Database, previous: str = "") -> tuple[str, int]:
    """The globals file's text for the managers in the database (mobiles refused by the policy: none)."""
    managers = await ManagerRepository(db).all()
    lines, refused = mobile_globals(managers, settings.ami.originate)
    for manager, why in refused:
        log.warning(
            "follow-me skips %s's mobile %s: the click-to-call policy refuses it (%s)",
            manager.login,
            manager.mobile,
            why,
        )
    cleared = {f"CRMTEL_MOBILE_{ext}" for m in managers for ext in m.extensions}
    return globals_file_text(lines, cleared, previous), len(lines)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


async def sync_mobile_globals(settings: Settings, db: Database, *, reload: bool | None = None) -> MobileSync:
    """Write ``mobile.globals_file`` (if set) and reload the dialplan over AMI (if asked)."""
    target = settings.mobile.globals_file
    previous = await asyncio.to_thread(_read, target) if target is not None else ""
    text, count = await render(settings, db, previous)
    reloaded = False
    if target is not None:
        await asyncio.to_thread(write_private, target, text)
        if settings.mobile.reload if reload is None else reload:
            await reload_module(settings, "pbx_config.so", "follow-me's mobiles")
            reloaded = True
        log.info(
            "follow-me: %d mobile global(s) written to %s%s",
            count,
            target,
            ", dialplan reloaded" if reloaded else "",
        )
    return MobileSync(text, count, target, reloaded)


async def after_mobile_change(settings: Settings, db: Database) -> str | None:
    """The sync run after a manager change; a line to print, or None when no globals file is configured.

    CrmtelError when the file could not be written or the PBX refused the reload: the change stands, and the
    message says how to apply it."""
    if settings.mobile.globals_file is None:
        return None
    try:
        result = await sync_mobile_globals(settings, db)
    except (OSError, CrmtelError) as err:
        raise CrmtelError(
            f"follow-me's mobiles in {settings.mobile.globals_file} were not updated ({err}); "
            "run `crmtel config mobile-globals` once this is fixed"
        ) from err
    return f"follow-me mobiles: {result.mobiles} in {result.written}" + (
        " (dialplan reloaded)" if result.reloaded else " (reload: crmtel-mobiles.path or `dialplan reload`)"
    )


def mobile_sync(settings: Settings, db: Database) -> Callable[[], Awaitable[None]] | None:
    """What the daemon runs after a manager changed their mobile on the page (None: no globals file).

    One sync at a time (each reads the file the previous one wrote); a failure is logged, not raised: the
    mobile is saved, and the log says how to apply it."""
    if settings.mobile.globals_file is None:
        return None
    lock = asyncio.Lock()

    async def sync() -> None:
        async with lock:
            try:
                await sync_mobile_globals(settings, db)
            except (OSError, CrmtelError) as err:
                log.error(
                    "follow-me's mobiles were not updated (%s); run `crmtel config mobile-globals` once fixed",
                    err,
                )

    return sync
