"""crmtel's HTTP API as OpenAPI 3.1: every route the web app mounts, with what it does and who may call it.

The table below is written by hand (what a route is for cannot be read off the router); the test suite compares
it with the routes the running app really mounts, both ways, so a route added without a line here fails.
Request bodies, query strings and JSON answers are JSON Schemas made from the handlers' own models
(``schemas.py``); the tests validate real answers against them.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from crmtel import __version__
from crmtel.apitokens.models import ANY, ROUTE_SCOPES, SCOPE_HELP, Scope
from crmtel.openapi.schemas import QUERIES, REQUESTS, RESPONSES, components, query_parameters
from crmtel.push.csrf import CSRF_HEADER
from crmtel.push.sessions import COOKIE

SESSION, ROUTE_TOKEN, METRICS_TOKEN, PUBLIC, B24_TOKEN = "session", "route", "metrics", "public", "b24"

# (method, path) -> (tag, summary, who may call it)
ROUTES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("GET", "/"): ("page", "The managers' page (HTML)", PUBLIC),
    ("GET", "/board"): ("board", "The heads' live board page (HTML)", SESSION),
    ("GET", "/ws"): ("page", "Live call events over a websocket (101 Switching Protocols)", SESSION),
    ("GET", "/i18n/{lang}.json"): ("page", "The page's message catalogue for a language", PUBLIC),
    ("POST", "/api/login"): ("session", "Log in (sets the session and CSRF cookies)", PUBLIC),
    ("POST", "/api/logout"): ("session", "Log out", SESSION),
    ("GET", "/api/me"): ("session", "Who is logged in, with the CSRF token", SESSION),
    ("PUT", "/api/me/locale"): ("session", "Choose the page's language", SESSION),
    ("PUT", "/api/me/mobile"): ("session", "Set (or clear) one's own mobile number", SESSION),
    ("GET", "/api/board"): ("board", "The heads' board: today's counts and live calls", SESSION),
    ("GET", "/api/call-results"): ("calls", "The call result codes one may set", SESSION),
    ("GET", "/api/calls"): ("calls", "Call history, filtered and paged", SESSION),
    ("GET", "/api/calls.csv"): (
        "calls",
        "The call history with the same filters as a CSV file Excel opens (UTF-8 with a BOM, `;` and decimal "
        "commas; `sep=comma`: `,` and decimal points), newest first, every call (streamed)",
        SESSION,
    ),
    ("GET", "/api/calls/{call_id}"): ("calls", "One call with its party, notes and tasks", SESSION),
    ("POST", "/api/calls/{call_id}/deals"): ("calls", "Open a deal from a call", SESSION),
    ("POST", "/api/calls/{call_id}/lead"): ("calls", "Make a lead of a call's unknown caller", SESSION),
    ("POST", "/api/calls/{call_id}/notes"): ("calls", "Add a note to a call", SESSION),
    ("GET", "/api/calls/{call_id}/recording"): ("calls", "The call's recording (audio)", SESSION),
    ("PUT", "/api/calls/{call_id}/result"): ("calls", "Set the call's result code", SESSION),
    ("POST", "/api/calls/{call_id}/tasks"): ("calls", "Plan a task from a call", SESSION),
    ("GET", "/api/callbacks"): ("callbacks", "Callback tasks of missed calls", SESSION),
    ("POST", "/api/callbacks/{task_id}/close"): ("callbacks", "Close a callback task with a result", SESSION),
    ("GET", "/api/crm/settings"): ("crm", "Deal stages and lost reasons", SESSION),
    ("GET", "/api/managers"): ("crm", "The team", SESSION),
    ("GET", "/api/search"): ("crm", "Search clients and leads", SESSION),
    ("GET", "/api/{kind}"): ("crm", "Clients or leads, filtered and paged by cursor", SESSION),
    ("GET", "/api/{kind}.csv"): (
        "crm",
        "Clients or leads with the same search, filters and sort as a CSV file Excel opens (a BOM, `;` and "
        "decimal commas; `sep=comma`: `,` and decimal points), every row (streamed)",
        SESSION,
    ),
    ("POST", "/api/{kind}"): ("crm", "Create a client or lead", SESSION),
    ("GET", "/api/{kind}/{party_id}"): ("crm", "One client's or lead's card", SESSION),
    ("PATCH", "/api/{kind}/{party_id}"): ("crm", "Edit a card (refused if changed meanwhile)", SESSION),
    ("POST", "/api/{kind}/{party_id}/merge"): ("crm", "Merge another record into this one", SESSION),
    ("POST", "/api/{kind}/{party_id}/notes"): ("crm", "Add a note to a client or lead", SESSION),
    ("PUT", "/api/{kind}/{party_id}/shares"): ("crm", "Share a record with managers", SESSION),
    ("GET", "/api/{kind}/{party_id}/timeline"): ("crm", "A record's calls, notes, deals and tasks", SESSION),
    ("POST", "/api/leads/{party_id}/convert"): ("crm", "Convert a lead into a client", SESSION),
    ("GET", "/api/deals"): ("deals", "Deals, filtered and paged", SESSION),
    ("GET", "/api/deals.csv"): (
        "deals",
        "The deals with the same filters as a CSV file Excel opens (a BOM, `;` and decimal commas; "
        "`sep=comma`: `,` and decimal points), newest first, every deal (streamed)",
        SESSION,
    ),
    ("POST", "/api/deals"): ("deals", "Open a deal", SESSION),
    ("GET", "/api/deals/pipeline"): ("deals", "Open deals by stage", SESSION),
    ("GET", "/api/deals/{deal_id}"): ("deals", "One deal", SESSION),
    ("PATCH", "/api/deals/{deal_id}"): ("deals", "Move, win or lose a deal", SESSION),
    ("GET", "/api/tasks"): ("tasks", "Tasks, by day or week", SESSION),
    ("GET", "/api/tasks.csv"): (
        "tasks",
        "The tasks with the same filters as a CSV file Excel opens (a BOM, `;`; `sep=comma`: `,`), by due "
        "time, every task (streamed)",
        SESSION,
    ),
    ("POST", "/api/tasks"): ("tasks", "Plan a task", SESSION),
    ("PATCH", "/api/tasks/{task_id}"): ("tasks", "Edit or reassign a task", SESSION),
    ("POST", "/api/tasks/{task_id}/complete"): ("tasks", "Complete a task", SESSION),
    ("POST", "/api/tasks/{task_id}/reopen"): ("tasks", "Reopen a task", SESSION),
    ("GET", "/api/phone"): ("phone", "The manager's own browser-phone registration (a credential)", SESSION),
    ("POST", "/api/dial"): ("dial", "Click-to-call from the manager's own phone", SESSION),
    ("POST", "/api/dial/browser"): ("dial", "Check a click the browser phone places itself", SESSION),
    ("GET", "/api/dial/{originate_id}"): ("dial", "Where a click-to-call attempt stands", SESSION),
    ("GET", "/reports/calls-vs-deals"): ("reports", "Calls versus deals per manager (HTML)", SESSION),
    ("GET", "/reports/calls-vs-deals.{fmt}"): ("reports", "The same as CSV, XLSX or JSON", SESSION),
    ("GET", "/reports/queues"): ("reports", "Queue report and heatmap (HTML)", SESSION),
    ("GET", "/reports/queues.{fmt}"): ("reports", "The same as CSV, XLSX, JSON or SVG", SESSION),
    ("GET", "/route"): ("routing", "Where to send an inbound call (the dialplan's CURL)", ROUTE_TOKEN),
    ("GET", "/healthz"): ("monitoring", "Health: database, PBXs, cluster, outbox backlog", PUBLIC),
    ("GET", "/metrics"): ("monitoring", "Prometheus metrics", METRICS_TOKEN),
    ("GET", "/api/openapi.json"): ("monitoring", "This document", PUBLIC),
    ("POST", "/integrations/bitrix24/events"): (
        "integrations",
        "Bitrix24's events (install, click-to-call); form-encoded, checked by the application token",
        B24_TOKEN,
    ),
}

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    SESSION: [{"session": [], "csrf": []}],
    ROUTE_TOKEN: [{"bearer": []}, {}],
    METRICS_TOKEN: [{"bearer": []}, {}],
    PUBLIC: [],
    B24_TOKEN: [],
}
_PARAM = re.compile(r"\{(\w+)\}")
_JSON = "application/json"


def _security(method: str, path: str, who: str) -> list[dict[str, list[str]]]:
    """Who may call a route; session routes open to API tokens also take ``bearer`` with the scope needed."""
    requirements = list(_SECURITY[who])
    scope = ROUTE_SCOPES.get((method, path)) if who == SESSION else None
    if scope is not None:
        requirements.append({"api_token": [] if scope == ANY else [scope]})
    return requirements


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    requests, responses, schemas = components()
    error = {"description": "An error", "content": {_JSON: {"schema": {"$ref": responses["ErrorOut"]}}}}
    for (method, path), (tag, summary, who) in sorted(ROUTES.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        route = (method, path)
        answers: dict[str, Any] = {
            str(status): {
                "description": model.__doc__.strip().splitlines()[0] if model.__doc__ else "OK",
                "content": {_JSON: {"schema": {"$ref": responses[model.__name__]}}},
            }
            for status, model in RESPONSES.get(route, {}).items()
        } or {"200": {"description": "OK (not JSON, or not described)"}}
        operation: dict[str, Any] = {
            "tags": [tag],
            "summary": summary,
            "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_') or 'root'}",
            "security": _security(method, path, who),
            "responses": {**answers, "default": error},
        }
        parameters = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _PARAM.findall(path)
        ]
        if route in QUERIES:
            parameters += query_parameters(QUERIES[route])
        if parameters:
            operation["parameters"] = parameters
        if route in REQUESTS:
            operation["requestBody"] = {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": requests[REQUESTS[route].__name__]}}},
            }
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crmtel",
            "version": __version__,
            "description": "Asterisk telephony for sales teams. Writes with a session need the CSRF token from "
            "GET /api/me in X-CSRF-Token; integrations send an API token as Authorization: Bearer instead.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
                "bearer": {"type": "http", "scheme": "bearer", "description": "A route's own token"},
                "api_token": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "crmtel_…",
                    "description": "An API token from `crmtel token create`: acts as its manager, within its "
                    "scopes (listed on each operation); no CSRF token needed. Scopes — "
                    + "; ".join(f"{s.value}: {SCOPE_HELP[s]}" for s in Scope),
                },
            },
        },
    }


def openapi_routes() -> web.RouteTableDef:
    """``GET /api/openapi.json`` (public: it describes, it holds nothing)."""
    table = web.RouteTableDef()
    body = document()

    @table.get("/api/openapi.json")
    async def get_openapi(_request: web.Request) -> web.Response:
        return web.json_response(body)

    return table
