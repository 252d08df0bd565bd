"""``POST /api/dial`` (click-to-call from the page) and ``GET /api/dial/{id}``; results also arrive on the
websocket as ``dial.result`` messages for the manager who clicked."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import StringConstraints

from crmtel.dial.models import DialRefused, DialResult, DialStatus
from crmtel.dial.service import DialService
from crmtel.i18n import Translator
from crmtel.phones import display
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.inputs import Body, read_body
from crmtel.timestamps import iso_instant

RESULT = "dial.result"
# Statuses worded apart for "via my mobile" (crmtel/i18n/catalogues/*/dial.json: dial.mobile.*).
MOBILE_WORDED = frozenset(
    {
        DialStatus.CALLING,
        DialStatus.ANSWERED,
        DialStatus.NO_ANSWER,
        DialStatus.BUSY,
        DialStatus.REJECTED,
        DialStatus.FAILED,
    }
)

Number = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Extension = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{2,6}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class BrowserDialBody(Body):
    """A click the browser phone places itself: which number, optionally as which of the manager's phones.
    No ``via``: the browser is the phone (a "via my mobile" here was accepted and silently ignored)."""

    number: Number
    extension: Extension | None = None
    name: Name | None = None


class DialBody(BrowserDialBody):
    """A click on a number: which number, optionally from which of the manager's own phones."""

    # "mobile": ring the manager's own mobile first (they press 1 to accept), not the desk phone.
    via: Literal["phone", "mobile"] = "phone"


def message_key(result: DialResult) -> str:
    """The words for an attempt: "via my mobile" ones speak of the mobile, not of the desk phone."""
    if result.request.mobile is not None and result.status in MOBILE_WORDED:
        return f"dial.mobile.{result.status.value}"
    return result.status.message_key


def result_json(result: DialResult, tr: Translator | None = None) -> dict[str, Any]:
    """An attempt as the page sees it; ``message_key``/``params`` for the page's own translation."""
    req = result.request
    # The number as people write it (+7 916 777-00-07), not the dial string or E.164.
    params = {"number": display(req.number), "extension": req.extension, "detail": result.detail or ""}
    data: dict[str, Any] = {
        "type": RESULT,
        "originate_id": req.originate_id,
        "status": result.status.value,
        "ok": result.status.ok,
        "duplicate": result.duplicate,
        "pbx": req.pbx,
        "extension": req.extension,
        "number": req.number,
        "dialled": req.exten,
        "via": "mobile" if req.mobile is not None else "phone",
        "detail": result.detail,
        "message_key": message_key(result),
        "params": params,
        "at": iso_instant(result.at),
    }
    if tr is not None:
        data["message"] = tr.t(message_key(result), **params)
    return data


def hub_notifier(hub: Hub) -> Any:
    """The service's ``notify``: the result goes to every page of the manager who clicked."""

    def notify(manager_id: int | None, result: DialResult) -> None:
        if manager_id is not None:
            hub.send_to(manager_id, result_json(result))

    return notify


def refused(err: DialRefused, tr: Translator) -> web.Response:
    """A refusal as JSON, in the manager's language (a rate refusal says when to try again: Retry-After)."""
    body: dict[str, Any] = {"error": tr.t(err.key, **err.params), "key": err.key}
    headers = {}
    if "retry_after" in err.params:
        body["retry_after"] = int(err.params["retry_after"])
        headers["Retry-After"] = err.params["retry_after"]
    return web.json_response(body, status=err.status, headers=headers)


def dial_routes(service: DialService) -> web.RouteTableDef:
    """The click-to-call routes (behind the session check)."""
    routes = web.RouteTableDef()

    @routes.post("/api/dial")
    async def dial(request: web.Request) -> web.Response:
        manager = current_manager(request)
        tr = translator(request)
        body = await read_body(request, DialBody)
        try:
            attempt = await service.prepare(
                body.number,
                manager=manager,
                extension=body.extension,
                name=body.name,
                via_mobile=body.via == "mobile",
            )
            result = await service.start(attempt, manager_id=manager.id)
        except DialRefused as err:
            return refused(err, tr)
        return web.json_response(result_json(result, tr), status=200 if result.duplicate else 202)

    @routes.post("/api/dial/browser")
    async def dial_in_browser(request: web.Request) -> web.Response:
        # The browser phone places the call itself: the same policy, limits and audit as a click, then the
        # page dials ``exten`` (the number as the PBX dials it, after dial_rules) from the browser.
        manager = current_manager(request)
        tr = translator(request)
        body = await read_body(request, BrowserDialBody)
        try:
            attempt = await service.prepare(
                body.number, manager=manager, extension=body.extension, name=body.name
            )
            await service.admit(attempt, manager.id)
        except DialRefused as err:
            return refused(err, tr)
        return web.json_response(
            {
                "originate_id": attempt.originate_id,
                "exten": attempt.exten,
                "number": attempt.number,
                "extension": attempt.extension,
                "message": tr.t("dial.status.browser", number=display(attempt.number)),
            }
        )

    @routes.get("/api/dial/{originate_id}")
    async def status(request: web.Request) -> web.Response:
        manager = current_manager(request)
        found = service.get(request.match_info["originate_id"][:64])
        if found is None or found[1] != manager.id:
            tr = translator(request)
            return web.json_response({"error": tr.t("dial.not_found"), "key": "dial.not_found"}, status=404)
        return web.json_response(result_json(found[0], translator(request)))

    return routes
