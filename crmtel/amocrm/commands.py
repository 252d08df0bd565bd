"""``crmtel amocrm authorize CODE``: exchange the integration's authorization code for the first tokens."""

from __future__ import annotations

import argparse

from crmtel.amocrm.client import AmoClient, AmoError
from crmtel.config import Settings
from crmtel.errors import ConfigError
from crmtel.store.db import Database, upgrade
from crmtel.store.outbox import SealedTokens


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``amocrm authorize``."""
    cmd = subparsers.add_parser("amocrm", help="the amoCRM / Kommo connection")
    sub = cmd.add_subparsers(dest="amocrm_command", required=True, metavar="ACTION")
    auth = sub.add_parser(
        "authorize",
        help="store the first tokens from the integration's authorization code (valid 20 minutes)",
    )
    auth.add_argument("code", help="the authorization code amoCRM shows for the integration")
    auth.set_defaults(handler=_authorize)


async def _authorize(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.amocrm.enabled:
        raise ConfigError("amocrm: set [amocrm] account, client_id, client_secret and redirect_uri first")
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    client = AmoClient(settings.amocrm, SealedTokens(db))
    try:
        await client.authorize(args.code.strip())
    except AmoError as err:
        print(f"amoCRM refused the code: {err}")
        return 1
    finally:
        await client.aclose()
        await db.dispose()
    print("amoCRM authorized: tokens stored (sealed); the running crmtel uses them from its next delivery")
    return 0
