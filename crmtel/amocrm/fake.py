"""A strict loopback amoCRM account for tests: OAuth (code and refresh grants, rotating refresh tokens), Bearer
tokens, the 7 requests/s limit (429 beyond it), ``POST /api/v4/calls`` (required fields checked; a number no
contact has is a per-item 404 error), ``POST /api/v4/leads/unsorted/sip``, ``POST /api/v2/events`` and
``GET /api/v4/contacts?query=``, and the lists a lost answer is checked against: ``GET /api/v4/{contacts,leads,
companies}/notes`` (a posted call is a ``call_in``/``call_out`` note on its contact, ``params.uniq``; filters
``note_type``, ``updated_at`` from/to, ``entity_id``) and ``GET /api/v4/leads/unsorted`` (``filter[category]``,
``filter[uid]``, ``order[created_at|updated_at]``), both paged by ``page``/``limit`` (at most 250; 204 when
empty); an unknown query parameter is a 400. Unknown paths are 404. A field that fails validation is amoCRM's documented
400 shape (``validation-errors``: per ``request_id``, ``code``/``path``/``detail``); each item's ``request_id``
is echoed in the answer, as amoCRM's own SDK (amocrm/amocrm-api-php) matches answers to requests by it.
``posted`` keeps every call and unsorted entry accepted, repeats included, so a test sees a duplicate.

amoCRM's reference (developers.amocrm.ru) is not in the reference store this was written against; the fields
follow its published API v4 field list for calls and unsorted. Two points are this fake's assumption, not
verified: a call repeated with the same ``uniq`` (or an unsorted entry with the same ``source_uid``) is kept once.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class AmoCall:
    """A call as the account keeps it."""

    uniq: str
    direction: str
    duration: int
    phone: str
    call_status: int | None
    responsible_user_id: int | None
    contact_id: int | None = None
    unsorted: bool = False
    # When the account took it (its note's created_at/updated_at, the unsorted entry's created_at).
    at: int = 0
    link: str = ""


@dataclass
class FakeAmoCrm:
    """One account on one loopback port (API and OAuth)."""

    client_id: str
    client_secret: str
    redirect_uri: str
    codes: set[str] = field(default_factory=set)
    contacts: dict[str, tuple[int, int]] = field(default_factory=dict)  # phone -> (contact id, responsible)
    calls: dict[str, AmoCall] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # The uniq (source_uid) of every call or unsorted entry accepted, in order, repeats included.
    posted: list[str] = field(default_factory=list)
    access: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    over_limit: int = 0
    limit_per_second: int = 7
    # When each API request arrived, by the fake's clock (time.monotonic): tests count them per second.
    arrivals: list[float] = field(default_factory=list)
    _times: deque[float] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self, port: int = 0) -> None:
        """Listen on loopback."""
        app = web.Application()
        app.router.add_post("/oauth2/access_token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._api)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop answering."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """The account's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def new_code(self) -> str:
        """An authorization code, as amoCRM shows once when the integration is installed."""
        code = secrets.token_hex(16)
        self.codes.add(code)
        return code

    def expire_tokens(self) -> None:
        """Every access token expires now."""
        for token in self.access:
            self.access[token] = 0.0

    def _issue(self) -> dict[str, Any]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self.access[access] = time.time() + 86400
        self.refresh_tokens.add(refresh)
        return {"token_type": "Bearer", "expires_in": 86400, "access_token": access, "refresh_token": refresh}

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return _problem(401, "Unauthorized", "Client authentication failed")
        if body.get("redirect_uri") != self.redirect_uri:
            return _problem(400, "Bad Request", "redirect_uri does not match")
        grant = body.get("grant_type")
        if grant == "authorization_code" and body.get("code") in self.codes:
            self.codes.discard(body["code"])
            return web.json_response(self._issue())
        if grant == "refresh_token" and body.get("refresh_token") in self.refresh_tokens:
            self.refresh_tokens.discard(body["refresh_token"])
            return web.json_response(self._issue())
        return _problem(400, "Bad Request", "Authorization code or refresh token is invalid")

    def _limited(self) -> bool:
        now = time.monotonic()
        self.arrivals.append(now)
        while self._times and now - self._times[0] > 1.0:
            self._times.popleft()
        self._times.append(now)
        return len(self._times) > self.limit_per_second

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if self._limited():
            self.over_limit += 1
            return _problem(429, "Too Many Requests", "Rate limit exceeded")
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self.access.get(token, 0.0) < time.time():
            return _problem(401, "Unauthorized", "Token has expired or is invalid")
        route = (request.method, request.path)
        if route == ("POST", "/api/v4/calls"):
            return await self._calls(await request.json())
        if route == ("POST", "/api/v4/leads/unsorted/sip"):
            return await self._unsorted(await request.json())
        if route == ("POST", "/api/v2/events"):
            body = await request.json()
            items = body.get("add") if isinstance(body, dict) else None
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and i.get("type") == "phone_call" and i.get("phone_number") for i in items
            ):
                return _problem(400, "Bad Request", "add: phone_call events with phone_number expected")
            self.events.extend(items)
            return web.json_response({"_embedded": {"items": [{"element_id": 0} for _ in items]}})
        if request.method == "GET" and request.path in NOTES:
            return self._notes(request.path.split("/")[3], request.query)
        if route == ("GET", "/api/v4/leads/unsorted"):
            return self._unsorted_list(request.query)
        if route == ("GET", "/api/v4/contacts"):
            found = self.contacts.get(request.query.get("query", ""))
            if found is None:
                return web.Response(status=204)
            return web.json_response(
                {"_embedded": {"contacts": [{"id": found[0], "responsible_user_id": found[1]}]}}
            )
        return _problem(404, "Not Found", f"{request.method} {request.path}")

    async def _calls(self, body: Any) -> web.Response:
        if not isinstance(body, list) or not body:
            return _problem(400, "Bad Request", "an array of calls is expected")
        done: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        invalid: list[dict[str, Any]] = []
        for i, item in enumerate(body):
            request_id = str(item.get("request_id", i)) if isinstance(item, dict) else str(i)
            if not isinstance(item, dict):
                invalid.append(_invalid(request_id, [("", "NotSupportedType", "An object is expected.")]))
                continue
            wrong = [
                (k, "NotBlank", "This value should not be blank.")
                for k in ("direction", "duration", "source", "phone")
                if item.get(k) in (None, "")
            ]
            if item.get("direction") not in (None, "", "inbound", "outbound"):
                wrong.append(
                    ("direction", "NotSupportedChoice", "The value you selected is not a valid choice.")
                )
            if item.get("call_status") is not None and item["call_status"] not in range(1, 8):
                wrong.append(
                    ("call_status", "NotSupportedChoice", "The value you selected is not a valid choice.")
                )
            if wrong:
                invalid.append(_invalid(request_id, wrong))
                continue
            contact = self.contacts.get(str(item["phone"]))
            if contact is None:
                errors.append({"request_id": request_id, "status": 404, "title": "Entity not found"})
                continue
            uniq = str(item.get("uniq") or secrets.token_hex(8))
            self.posted.append(uniq)
            self.calls.setdefault(
                uniq,
                AmoCall(
                    uniq,
                    item["direction"],
                    int(item["duration"]),
                    str(item["phone"]),
                    item.get("call_status"),
                    item.get("responsible_user_id"),
                    contact[0],
                    at=int(time.time()),
                    link=str(item.get("link") or ""),
                ),
            )
            done.append(
                {
                    "id": len(self.calls),
                    "entity_id": contact[0],
                    "entity_type": "contact",
                    "request_id": request_id,
                }
            )
        if invalid:
            return _validation(invalid)
        return web.json_response({"_total_items": len(done), "errors": errors, "_embedded": {"calls": done}})

    async def _unsorted(self, body: Any) -> web.Response:
        if not isinstance(body, list) or not body:
            return _problem(400, "Bad Request", "an array of unsorted entries is expected")
        out = []
        for i, item in enumerate(body):
            meta = item.get("metadata") if isinstance(item, dict) else None
            needed = ("uniq", "duration", "service_code", "phone", "called_at")
            if (
                not item.get("source_uid")
                or not item.get("source_name")
                or not isinstance(meta, dict)
                or any(meta.get(k) in (None, "") for k in needed)
            ):
                return _problem(
                    400, "Bad Request", f"unsorted[{i}]: source_uid, source_name, metadata required"
                )
            uid = str(item["source_uid"])
            self.posted.append(uid)
            self.calls.setdefault(
                uid,
                AmoCall(
                    uid,
                    "inbound",
                    int(meta["duration"]),
                    str(meta["phone"]),
                    None,
                    None,
                    unsorted=True,
                    at=int(time.time()),
                    link=str(meta.get("link") or ""),
                ),
            )
            out.append(
                {
                    "uid": uid,
                    "request_id": str(item.get("request_id", i)),
                    "_embedded": {"leads": [{"id": len(self.calls)}]},
                }
            )
        return web.json_response({"_total_items": len(out), "_embedded": {"unsorted": out}})

    def _notes(self, entity: str, query: Any) -> web.Response:
        wrong = _unknown(query, NOTE_PARAMS)
        page = _paging(query)
        if wrong or page is None:
            return _problem(400, "Bad Request", f"query: {wrong or 'page/limit'}")
        types = set(query.getall("filter[note_type][]", [])) | set(query.getall("filter[note_type]", []))
        low = int(query.get("filter[updated_at][from]", 0))
        high = int(query.get("filter[updated_at][to]", 2**62))
        entity_ids = {int(v) for v in query.getall("filter[entity_id][]", [])}
        # Calls go on the contact with the number: leads and companies have no call notes here.
        calls = [
            (n, c)
            for n, c in enumerate(self.calls.values(), 1)
            if entity == "contacts"
            and not c.unsorted
            and (not types or ("call_in" if c.direction == "inbound" else "call_out") in types)
            and low <= c.at <= high
            and (not entity_ids or c.contact_id in entity_ids)
        ]
        notes: list[dict[str, Any]] = [
            {
                "id": n,
                "entity_id": c.contact_id,
                "note_type": "call_in" if c.direction == "inbound" else "call_out",
                "created_at": c.at,
                "updated_at": c.at,
                "params": {
                    "uniq": c.uniq,
                    "duration": c.duration,
                    "source": "crmtel",
                    "link": c.link,
                    "phone": c.phone,
                    "call_status": c.call_status,
                },
            }
            for n, c in calls
        ]
        return _page(notes, "notes", *page)

    def _unsorted_list(self, query: Any) -> web.Response:
        wrong = _unknown(query, UNSORTED_PARAMS)
        page = _paging(query)
        if wrong or page is None:
            return _problem(400, "Bad Request", f"query: {wrong or 'page/limit'}")
        categories = set(query.getall("filter[category][]", []))
        uids = set(query.getall("filter[uid][]", [])) | set(query.getall("filter[uid]", []))
        items = [
            {
                "uid": c.uniq,
                "source_uid": c.uniq,
                "category": "sip",
                "created_at": c.at,
                "metadata": {"uniq": c.uniq, "duration": c.duration, "phone": c.phone, "link": c.link},
            }
            for c in self.calls.values()
            if c.unsorted
        ]
        items = [
            i for i in items if (not categories or "sip" in categories) and (not uids or i["uid"] in uids)
        ]
        order = query.get("order[created_at]") or query.get("order[updated_at]")
        if order not in (None, "asc", "desc"):
            return _problem(400, "Bad Request", "order: asc or desc")
        items.sort(key=lambda i: int(str(i["created_at"])), reverse=order == "desc")
        return _page(items, "unsorted", *page)


NOTES = {f"/api/v4/{entity}/notes" for entity in ("contacts", "leads", "companies", "customers")}
_PAGING = frozenset({"page", "limit"})
NOTE_PARAMS = _PAGING | {
    "filter[note_type][]",
    "filter[note_type]",
    "filter[updated_at][from]",
    "filter[updated_at][to]",
    "filter[entity_id][]",
    "filter[id][]",
}
UNSORTED_PARAMS = _PAGING | {
    "filter[category][]",
    "filter[uid]",
    "filter[uid][]",
    "filter[pipeline_id]",
    "order[created_at]",
    "order[updated_at]",
}


def _unknown(query: Any, known: frozenset[str]) -> list[str]:
    return sorted(k for k in query if k not in known)


def _paging(query: Any) -> tuple[int, int] | None:
    """(page, limit): page from 1, limit 1..250 (amoCRM's maximum); None when out of range."""
    try:
        page, limit = int(query.get("page", 1)), int(query.get("limit", 50))
    except ValueError:
        return None
    return (page, limit) if page >= 1 and 1 <= limit <= 250 else None


def _page(items: list[dict[str, Any]], key: str, page: int, limit: int) -> web.Response:
    chunk = items[(page - 1) * limit : page * limit]
    if not chunk:
        return web.Response(status=204)
    links: dict[str, Any] = {"self": {"href": f"?page={page}"}}
    if page * limit < len(items):
        links["next"] = {"href": f"?page={page + 1}"}
    return web.json_response({"_page": page, "_links": links, "_embedded": {key: chunk}})


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"title": title, "type": "https://httpstatus.es/" + str(status), "status": status, "detail": detail},
        status=status,
    )


def _invalid(request_id: str, wrong: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "errors": [{"code": code, "path": path, "detail": detail} for path, code, detail in wrong],
    }


def _validation(invalid: list[dict[str, Any]]) -> web.Response:
    """amoCRM's documented answer to fields that fail validation."""
    return web.json_response(
        {
            "validation-errors": invalid,
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        },
        status=400,
    )
