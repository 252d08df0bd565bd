"""``crmtel config webphone-endpoints``: the managers' browser-phone endpoints for pjsip.conf (and the sync
that `crmtel manager` runs after every change)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crmtel.config import Settings
from crmtel.errors import CrmtelError
from crmtel.store.db import Database
from crmtel.webphone.sync import pending, sync_endpoints


def add_config_command(cfg_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``config webphone-endpoints`` under ``crmtel config``."""
    cmd = cfg_sub.add_parser(
        "webphone-endpoints",
        help="write (or print) the managers' browser-phone PJSIP endpoints and reload res_pjsip",
        description="One WebRTC device 99<ext> per active manager with an extension, for an #include in "
        "pjsip.conf (deploy/asterisk/WEBPHONE.md). Draws a credential for each manager who has none (new, or "
        "replaced after a password change or deactivation). Writes webphone.endpoints_file (or --output; "
        "'-' prints) and reloads res_pjsip over AMI when webphone.reload is on. For FreePBX ([ami] flavour or "
        "--flavour freepbx) the file is #included from pjsip_custom_post.conf and FreePBX's own files are refused.",
    )
    cmd.add_argument("--output", type=Path, help="file to write instead of webphone.endpoints_file; - prints")
    cmd.add_argument("--no-reload", action="store_true", help="do not reload res_pjsip afterwards")
    cmd.add_argument(
        "--flavour",
        choices=("asterisk", "freepbx"),
        help="the PBX the file is for (default: [ami] flavour); freepbx refuses the files FreePBX rewrites and "
        "says to #include the file from pjsip_custom_post.conf",
    )
    cmd.set_defaults(handler=_webphone_endpoints)


async def _webphone_endpoints(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.webphone.enabled:
        raise CrmtelError("the browser phone is off: set [webphone] enabled = true and ws_url first")
    output: Path | None = args.output
    to_stdout = output is not None and str(output) == "-"
    if output is not None and not to_stdout:
        settings = settings.model_copy(
            update={"webphone": settings.webphone.model_copy(update={"endpoints_file": output})}
        )
    elif to_stdout or settings.webphone.endpoints_file is None:
        settings = settings.model_copy(
            update={"webphone": settings.webphone.model_copy(update={"endpoints_file": None})}
        )
        to_stdout = True
    db = Database(settings.database_url)
    try:
        result = await sync_endpoints(
            settings, db, reload=False if args.no_reload else None, flavour=args.flavour
        )
    finally:
        await db.dispose()
    for clash in result.clashes:
        print(
            f"no browser phone for {clash} (an endpoint of that name would replace its phone)",
            file=sys.stderr,
        )
    if to_stdout:
        sys.stdout.write(result.text)
    else:
        print(
            f"{result.endpoints} browser phone(s) written to {result.written}"
            f" ({result.drawn} new credential(s), {result.dropped} dropped)"
            + ("; res_pjsip reloaded" if result.reloaded else ""),
            file=sys.stderr,
        )
    return 0


async def after_manager_change(settings: Settings, db: Database) -> str | None:
    """The sync `crmtel manager` runs after a change (new password, deactivation…); a line to print, or None.

    Without ``webphone.endpoints_file`` nothing is written, but a change that replaces or drops a credential is
    said: the PBX's include (written with --output) accepts the old credential until it is written again."""
    if not settings.webphone.enabled:
        return None
    if settings.webphone.endpoints_file is None:
        drawn, dropped = await pending(settings, db)
        if not drawn and not dropped:
            return None
        return (
            f"browser phones: {drawn} credential(s) to draw and {dropped} to drop, but webphone.endpoints_file "
            "is not set: run `crmtel config webphone-endpoints --output FILE` and reload res_pjsip — until "
            "then the PBX accepts the old credentials and those managers' pages get no browser phone"
        )
    result = await sync_endpoints(settings, db)
    return (
        f"browser phones: {result.endpoints} in {result.written}"
        + (" (res_pjsip reloaded)" if result.reloaded else " (reload res_pjsip yourself)")
        + "".join(f"; none for {clash}" for clash in result.clashes)
    )
