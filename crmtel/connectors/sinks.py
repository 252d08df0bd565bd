"""Which outside systems crmtel delivers to, built from the settings (one place for the composition root)."""

from __future__ import annotations

from crmtel.config import Settings
from crmtel.connectors.service import Sink
from crmtel.errors import ConfigError
from crmtel.webhooks.service import WebhookSink


def build_sinks(settings: Settings) -> list[Sink]:
    """Every configured connector: the webhook subscriptions (and the CRMs configured)."""
    sinks: list[Sink] = [WebhookSink(hook, i) for i, hook in enumerate(settings.webhooks, start=1)]
    names = [s.name for s in sinks]
    if len(set(names)) != len(names):
        raise ConfigError(f"webhooks: two subscriptions share a name ({', '.join(sorted(names))})")
    return sinks
