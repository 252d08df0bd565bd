"""The OpenAPI 3.1 description of crmtel's HTTP API, served at ``GET /api/openapi.json``."""
