"""``GET /api/openapi.json`` describes exactly the routes the running crmtel mounts (both ways)."""

from __future__ import annotations

import re

import aiohttp

from crmtel.app import start
from crmtel.openapi.document import ROUTES
from tests.fixtures.bitrix24 import fake_portal, settings_for
from tests.fixtures.daemon import app_settings


async def test_the_document_and_the_mounted_routes_agree_both_ways(database_url: str) -> None:
    """Every mounted route (Bitrix24's too) is documented, every documented one is mounted; served without login."""
    async with fake_portal() as fake:
        settings = app_settings(
            database_url,
            bitrix24=settings_for(fake),
        )
        async with start(settings) as running, aiohttp.ClientSession() as http:
            mounted: set[tuple[str, str]] = set()
            for route in running.app.router.routes():
                info = route.resource.get_info() if route.resource is not None else {}
                path = info.get("path") or info.get("formatter")
                if (
                    route.method in ("HEAD", "*") or path is None
                ):  # HEAD mirrors GET; /static is the page's files
                    continue
                mounted.add((route.method, str(path)))
            async with http.get(running.web_url + "api/openapi.json") as response:
                assert response.status == 200
                served = await response.json()
    documented = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops}
    assert mounted - documented == set(), "routes mounted without a line in crmtel/openapi/document.py"
    assert documented - mounted == set(), "documented routes nothing serves"
    assert documented == set(ROUTES)
    assert served["openapi"] == "3.1.0"
    for path, ops in served["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), path
            assert op["summary"]
            for requirement in op["security"]:
                assert set(requirement) <= set(served["components"]["securitySchemes"]), path
