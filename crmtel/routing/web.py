"""``GET /route?caller=…&did=…``: the routing decision over HTTP, for ``CURL()`` dialplans.

Only callers on this host, or bearing ``Authorization: Bearer <routing.http_token>``, get an answer: a
decision names the client behind a phone number. A request that came through a reverse proxy (it carries
``Forwarded``/``X-Forwarded-For``/``X-Real-IP``) is not treated as local even though its socket is.

``format=text`` answers ``kind=…&target=…&fallback_queue=…&reason=…&caller_name=…`` (URL-encoded), which
Asterisk's ``CURLOPT(hashcompat)=yes`` turns into ``HASH(crmtel,kind)`` etc. When there is no decision in
time the answer is 503 with an empty text body (or a JSON error), so the dialplan uses its default queue.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import quote, urlencode

from aiohttp import web
from pydantic import SecretStr

from crmtel.routing.service import Router

_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
_MAX_PARAM = 64


def is_local(request: web.Request) -> bool:
    """Whether the request comes straight from this host (loopback socket, no proxy headers)."""
    if any(h in request.headers for h in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def has_token(request: web.Request, token: SecretStr | None) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    if token is None or not token.get_secret_value():
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())


def route_handlers(router: Router, token: SecretStr | None) -> web.RouteTableDef:
    """The route table the web app mounts: ``app.add_routes(route_handlers(service, settings.http_token))``."""
    table = web.RouteTableDef()

    @table.get("/route")
    async def get_route(request: web.Request) -> web.StreamResponse:
        if not (is_local(request) or has_token(request, token)):
            raise web.HTTPUnauthorized(
                text="route: local requests or a bearer token only\n",
                headers={"WWW-Authenticate": 'Bearer realm="crmtel-route"'},
            )
        caller = request.query.get("caller", "")
        did = request.query.get("did", "")
        text = request.query.get("format", "json") == "text"
        if len(caller) > _MAX_PARAM or len(did) > _MAX_PARAM:
            raise web.HTTPBadRequest(text="route: caller and did are at most 64 characters\n")
        decision = await router.route(caller or None, did or None)
        if decision is None:
            if text:
                return web.Response(status=503, text="")
            return web.json_response({"error": "no route decided in time"}, status=503)
        if text:
            body = urlencode(
                {
                    "kind": decision.kind.value,
                    "target": decision.target,
                    "fallback_queue": decision.fallback_queue,
                    "reason": decision.reason,
                    "caller_name": decision.caller_name or "",
                },
                # %20, not '+': hashcompat=yes decodes with RFC 3986 rules, where '+' stays a plus sign.
                quote_via=quote,
            )
            return web.Response(text=body)
        return web.json_response(decision.as_dict())

    return table


def create_app(router: Router, token: SecretStr | None) -> web.Application:
    """A stand-alone application serving only ``/route`` (tests, or a separate listener)."""
    app = web.Application()
    app.add_routes(route_handlers(router, token))
    return app
