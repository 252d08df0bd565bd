"""``GET /i18n/<lang>.json``: the merged catalogue the browser translates with (public, cacheable)."""

from __future__ import annotations

import hashlib

from aiohttp import web

from crmtel.i18n.models import LocaleOptions

# The catalogues only change with a new crmtel version; the ETag makes a stale copy cheap to revalidate.
_MAX_AGE = 3600


def catalogue_routes(options: LocaleOptions) -> web.RouteTableDef:
    """The catalogue route (needs no session: the login form is translated too)."""
    bodies = {
        lang: options.catalogues.as_json(lang).encode("utf-8")
        for lang in options.languages
        if lang in options.catalogues.messages
    }
    etags = {lang: hashlib.sha256(body).hexdigest()[:32] for lang, body in bodies.items()}
    routes = web.RouteTableDef()

    @routes.get("/i18n/{lang}.json")
    async def catalogue(request: web.Request) -> web.Response:
        lang = request.match_info["lang"]
        body = bodies.get(lang)
        if body is None:
            return web.json_response({"error": f"no catalogue for {lang[:20]!r}"}, status=404)
        etag = etags[lang]
        headers = {"Cache-Control": f"public, max-age={_MAX_AGE}", "Vary": "Accept-Encoding"}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers={**headers, "ETag": f'"{etag}"'})
        response = web.Response(body=body, content_type="application/json", charset="utf-8", headers=headers)
        response.etag = etag
        return response

    return routes
