"""The call service as every command builds it (``run``, ``demo``, ``replay``, ``backfill``).

One place turns the configuration into the tracker's conventions — the region, every PBX's trunks and device
prefixes (FreePBX's WebRTC ``99<ext>``), the recordings folder, the language of task titles, how many digits
match a callback — so a capture replayed, a CDR backfilled and a live call are built by the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crmtel.calls.service import CallNotifier, CallService, CallTap, PartyLookup, WriteFence
from crmtel.config import WEBPHONE_DEVICE_PREFIX, AmiSettings, Settings
from crmtel.i18n import Translator
from crmtel.store.db import Database
from crmtel.store.parties import PartyRepository


def build_call_service(
    settings: Settings,
    db: Database,
    pbxes: Sequence[AmiSettings],
    *,
    parties: PartyLookup | None = None,
    notifier: CallNotifier | None = None,
    fence: WriteFence | None = None,
    after_flush: Callable[[int], None] | None = None,
    tap: CallTap | None = None,
) -> CallService:
    """The CallService for these PBXs, configured from ``settings`` alone (plus what the caller wires in)."""
    return CallService(
        db,
        settings.calls,
        parties if parties is not None else PartyRepository(db, settings.region),
        notifier,
        region=settings.region,
        trunks={trunk for pbx in pbxes for trunk in pbx.trunks},
        device_prefixes={pbx.name: _devices_of_users(settings, pbx) for pbx in pbxes},
        recordings_dir=str(settings.web.recordings_dir),
        fence=fence,
        translator=Translator.for_locale(settings.i18n.language, zone=settings.display_timezone),
        match_digits=settings.reports.callback_match_digits,
        after_flush=after_flush,
        tap=tap,
        backfilled={pbx.name for pbx in pbxes if pbx.cdr},
    )


def _devices_of_users(settings: Settings, pbx: AmiSettings) -> tuple[str, ...]:
    """The PBX's device prefixes, with the browser phone's (99<ext>) on the first PBX when it is on."""
    prefixes = pbx.devices_of_users
    first = settings.pbxes[0].name if settings.pbxes else None
    if settings.webphone.enabled and pbx.name == first and WEBPHONE_DEVICE_PREFIX not in prefixes:
        return (*prefixes, WEBPHONE_DEVICE_PREFIX)
    return prefixes
