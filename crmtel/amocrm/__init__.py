"""amoCRM / Kommo: calls logged through the outbox (OAuth 2, 7 requests a second)."""
