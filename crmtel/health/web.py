"""``GET /healthz``: 200 with the health report when crmtel is healthy, 503 otherwise; no login needed."""

from __future__ import annotations

from aiohttp import web

from crmtel.health.service import HealthCheck


def health_routes(check: HealthCheck) -> web.RouteTableDef:
    """The route table to mount among the web app's public routes."""
    table = web.RouteTableDef()

    @table.get("/healthz")
    async def get_health(_request: web.Request) -> web.Response:
        health = await check.check()
        return web.json_response(
            health.as_json(),
            status=200 if health.healthy else 503,
            headers={"Cache-Control": "no-store"},
        )

    return table
