"""The frame of a server-rendered page (the report, the heads' board): the same head and header as the managers' page.

``static/header.js`` builds this header in the browser for the main page and wires this server-rendered copy
(language switch, logout), so both look and behave alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from crmtel.domain import Manager, Role
from crmtel.i18n import LANGUAGES, Translator

# Each language is named in itself (and marked with lang=) so a reader of the other language finds theirs.
LANGUAGE_NAMES = {"ru": "Русский", "en": "English"}
# The header's pages: (id, catalogue key, address, heads only). static/header.js keeps the same list for
# the main page, which also shows the views its modules register.
NAV: tuple[tuple[str, str, str, bool], ...] = (
    ("calls", "page.nav.calls", "/#calls", False),
    ("reports", "page.nav.reports", "/reports/calls-vs-deals", False),
    ("queues", "report_queues.title", "/reports/queues", True),
    ("board", "board.title", "/board", True),
)
STYLESHEETS = ("/static/tokens.css", "/static/style.css")


def _e(text: str) -> str:
    return escape(text, quote=True)


def who(user: Manager, tr: Translator) -> str:
    """``Анна Смирнова · доб. 101`` (and the head's role), as the main page's header says it."""
    parts = [user.name]
    if user.extensions:
        parts.append(tr.t("page.header.ext", ext=", ".join(user.extensions)))
    if user.role is Role.HEAD:
        parts.append(tr.t("page.header.head"))
    return " · ".join(parts)


def head_html(tr: Translator, title: str, stylesheets: Sequence[str] = ()) -> str:
    """``<!doctype html>`` up to ``<body>``: language, viewport, the shared style sheets, the header's script."""
    links = "".join(f'<link rel="stylesheet" href="{_e(href)}">' for href in (*STYLESHEETS, *stylesheets))
    return (
        f'<!doctype html><html lang="{_e(tr.locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>{links}"
        '<script type="module" src="/static/header.js"></script></head><body>'
    )


def header_html(user: Manager, tr: Translator, current: str) -> str:
    """The shared header: who is logged in, the pages (``current`` marked), the language, log out."""
    current_mark = ' aria-current="page"'
    links = "".join(
        f'<a href="{_e(href)}" data-testid="nav-{_e(page)}"'
        f"{current_mark if page == current else ''}>{_e(tr.t(key))}</a>"
        for page, key, href, heads_only in NAV
        if user.role is Role.HEAD or not heads_only
    )
    options = "".join(
        f'<option value="{code}" lang="{code}"{" selected" if code == tr.locale else ""}>'
        f"{_e(LANGUAGE_NAMES.get(code, code))}</option>"
        for code in LANGUAGES
    )
    language = _e(tr.t("page.header.language"))
    return (
        '<header class="app-header" id="app-header" data-testid="app-header" data-server>'
        '<a class="brand" href="/">crmtel</a>'
        f'<nav class="app-nav" aria-label="{_e(tr.t("page.nav.label"))}">{links}</nav>'
        '<div class="app-user">'
        f'<span class="me" id="me" data-testid="me">{_e(who(user, tr))}</span>'
        f'<select id="lang-select" class="lang" data-testid="lang-select" aria-label="{language}" '
        f'title="{language}">{options}</select>'
        '<button type="button" id="logout" class="btn ghost" data-testid="logout">'
        f"{_e(tr.t('page.header.logout'))}</button>"
        "</div></header>"
    )
