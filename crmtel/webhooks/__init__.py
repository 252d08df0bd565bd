"""Signed webhooks (the Standard Webhooks scheme) for any other CRM, delivered through the outbox."""
