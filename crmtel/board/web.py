"""``GET /board`` (the page shell; ``static/board.js`` draws it) and ``GET /api/board`` (the board as JSON)."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from aiohttp import web

from crmtel.board.service import BoardService
from crmtel.domain import Manager, Role
from crmtel.i18n import Translator
from crmtel.push import chrome

CurrentUser = Callable[[web.Request], Manager | None]
Translate = Callable[[web.Request], Translator]


def page_html(user: Manager, tr: Translator) -> str:
    """The shell: the shared header and the board's regions, filled and kept live by ``board.js``."""
    title = escape(tr.t("board.title"), quote=True)
    return (
        chrome.head_html(tr, f"{tr.t('board.title')} — crmtel", ("/static/board.css",))
        + chrome.header_html(user, tr, "board")
        + f'<main class="board" id="board" data-testid="board" aria-label="{title}">'
        f'<p class="board-conn" id="board-conn" data-testid="board-conn" role="status"></p>'
        f'<section class="board-today" id="board-today" data-testid="board-today"></section>'
        f'<section class="board-queues" id="board-queues" data-testid="board-queues"></section>'
        f'<section class="board-talking" id="board-talking" data-testid="board-talking"></section>'
        "</main>"
        '<script type="module" src="/static/board.js"></script></body></html>'
    )


def board_routes(board: BoardService, current_user: CurrentUser, translate: Translate) -> web.RouteTableDef:
    """The board's page and its JSON, for heads only (it shows everyone's calls)."""
    routes = web.RouteTableDef()

    def _head(request: web.Request) -> Manager:
        user = current_user(request)
        if user is None or not user.active:
            raise web.HTTPUnauthorized(text="login required")
        if user.role is not Role.HEAD:
            raise web.HTTPForbidden(text=translate(request).t("board.forbidden"))
        return user

    @routes.get("/board")
    async def page(request: web.Request) -> web.Response:
        user = _head(request)
        return web.Response(
            text=page_html(user, translate(request)),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    @routes.get("/api/board")
    async def state(request: web.Request) -> web.Response:
        _head(request)
        return web.json_response(board.message(), headers={"Cache-Control": "no-store"})

    return routes
