"""Which outside systems crmtel delivers to, built from the settings (one place for the composition root)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from crmtel.amocrm.client import AmoClient
from crmtel.amocrm.routing import AmoSource
from crmtel.amocrm.service import AmoCrmSink
from crmtel.bitrix24.client import Bitrix24Client
from crmtel.bitrix24.offline import OfflineEvents
from crmtel.bitrix24.routing import Bitrix24Source
from crmtel.bitrix24.service import Bitrix24Sink
from crmtel.bitrix24.tokens import TokenStore
from crmtel.bitrix24.web import Dialer, EventHandler, bitrix24_routes
from crmtel.config import Settings
from crmtel.connectors.rate import RateLimits
from crmtel.connectors.routing import CrmResponsible, PartyLookup
from crmtel.connectors.service import Sink
from crmtel.errors import ConfigError
from crmtel.store.db import Database
from crmtel.store.outbox import SealedTokens
from crmtel.webhooks.service import WebhookSink


def build_sinks(settings: Settings, db: Database, limits: RateLimits | None = None) -> list[Sink]:
    """Every configured connector: Bitrix24 and amoCRM when configured, then the webhook subscriptions
    (``limits``: shared by the cluster's nodes, else per node)."""
    sinks: list[Sink] = []
    b24 = settings.bitrix24
    if b24.enabled:
        tokens = TokenStore(SealedTokens(db), b24.client_secret.get_secret_value())
        sinks.append(
            Bitrix24Sink(b24, Bitrix24Client(b24, tokens, limits=limits), db, settings.web.recordings_dir)
        )
    if settings.amocrm.enabled:
        sinks.append(AmoCrmSink(settings.amocrm, AmoClient(settings.amocrm, SealedTokens(db), limits=limits)))
    sinks.extend(WebhookSink(hook, i) for i, hook in enumerate(settings.webhooks, start=1))
    names = [s.name for s in sinks]
    if len(set(names)) != len(names):
        raise ConfigError(f"webhooks: two connectors share a name ({', '.join(sorted(names))})")
    return sinks


def connector_routes(sinks: Sequence[Sink], db: Database, dial: Dialer | None) -> list[web.RouteTableDef]:
    """The public routes the connectors need (Bitrix24's event handler)."""
    return [
        bitrix24_routes(EventHandler(sink.client, sink.users, db, dial))
        for sink in sinks
        if isinstance(sink, Bitrix24Sink)
    ]


def offline_pollers(sinks: Sequence[Sink], db: Database, dial: Dialer | None) -> list[OfflineEvents]:
    """Bitrix24's event queue pollers, where crmtel has no public address for the portal to post to."""
    return [
        OfflineEvents(
            sink.client,
            EventHandler(sink.client, sink.users, db, dial),
            interval=sink.settings.offline_poll_seconds,
        )
        for sink in sinks
        if isinstance(sink, Bitrix24Sink) and sink.settings.offline_events
    ]


def routing_lookup(parties: PartyLookup, sinks: Sequence[Sink], db: Database) -> PartyLookup:
    """The lookup routing decides with: crmtel's own, completed by each connected CRM's responsible manager
    (each asked in turn while none names a manager)."""
    lookup = parties
    for sink in reversed(sinks):
        if isinstance(sink, AmoCrmSink):
            lookup = CrmResponsible(lookup, AmoSource(sink.settings, sink.client), db)
        elif isinstance(sink, Bitrix24Sink):
            lookup = CrmResponsible(lookup, Bitrix24Source(sink.client, sink.users), db)
    return lookup
