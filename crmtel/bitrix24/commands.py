"""``crmtel bitrix24 authorize CODE``: the first tokens for a crmtel the portal cannot reach (no public address,
so no install event): the administrator opens the application's authorize page and pastes the code shown."""

from __future__ import annotations

import argparse

from crmtel.bitrix24.client import B24Error, Bitrix24Client
from crmtel.bitrix24.tokens import TokenStore
from crmtel.config import Settings
from crmtel.errors import ConfigError
from crmtel.store.db import Database, upgrade
from crmtel.store.outbox import SealedTokens


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bitrix24 authorize``."""
    cmd = subparsers.add_parser("bitrix24", help="the Bitrix24 connection")
    sub = cmd.add_subparsers(dest="bitrix24_command", required=True, metavar="ACTION")
    auth = sub.add_parser(
        "authorize",
        help="store the application's first tokens from an authorization code (no public address)",
    )
    auth.add_argument(
        "code", help="the code in the address <portal>/oauth/authorize/?client_id=… redirects to (30 s)"
    )
    auth.set_defaults(handler=_authorize)


async def _authorize(args: argparse.Namespace, settings: Settings) -> int:
    b24 = settings.bitrix24
    if not b24.portal or b24.webhook_mode:
        raise ConfigError(
            "bitrix24: set [bitrix24] portal, client_id and client_secret (no webhook_url) first"
        )
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    client = Bitrix24Client(b24, TokenStore(SealedTokens(db), b24.client_secret.get_secret_value()))
    try:
        await client.authorize(args.code.strip())
    except B24Error as err:
        print(f"Bitrix24 refused the code: {err.code}: {err.description}")
        return 1
    finally:
        await client.aclose()
        await db.dispose()
    mode = "polls its events (event.offline.get)" if b24.offline_events else "takes its events at public_url"
    print(f"Bitrix24 authorized: tokens stored (sealed); the running crmtel {mode} from its next round")
    return 0
