"""``GET /api/call-results`` (the configured list) and ``PUT /api/calls/{call_id}/result`` (one click)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from pydantic import StringConstraints

from crmtel.domain import call_id
from crmtel.push import messages
from crmtel.push.api import call_json, refuse, visible_call
from crmtel.push.context import STATE
from crmtel.push.inputs import Body, read_body
from crmtel.results.models import ResultChoices
from crmtel.store.call_results import CallResults


class ResultBody(Body):
    """The result picked on the card (null clears it)."""

    result: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None


def result_routes(choices: ResultChoices, results: CallResults) -> web.RouteTableDef:
    """The results API (behind the session check; a call is as visible here as on its card)."""
    routes = web.RouteTableDef()

    @routes.get("/api/call-results")
    async def list_results(_request: web.Request) -> web.Response:
        return web.json_response({"results": list(choices.codes)})

    @routes.put("/api/calls/{call_id}/result")
    async def set_result(request: web.Request) -> web.Response:
        manager, call = await visible_call(request)
        body = await read_body(request, ResultBody)
        if body.result is not None and not choices.allows(body.result):
            raise refuse(request, web.HTTPBadRequest, "messages.result_unknown", result=body.result)
        await results.set(call.id, body.result, manager.id, datetime.now(UTC))
        # The manager's other tabs show the same card: their result buttons follow this one.
        request.app[STATE].hub.send_to(
            manager.id, messages.result(call_id(call.pbx, call.linkedid), body.result)
        )
        return web.json_response(call_json(replace(call, result=body.result), playable=False))

    return routes
