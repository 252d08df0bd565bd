"""The shared header of server-rendered pages: who is logged in, the pages they may open, their language."""

from __future__ import annotations

from crmtel.domain import Manager, Role
from crmtel.i18n import Translator
from crmtel.push import chrome

HOSTILE = "<img src=x onerror=alert(1)>"


def _user(role: Role, name: str = "Анна Смирнова") -> Manager:
    return Manager(1, name, "anna", role, True, None, ("101",))


def test_header_names_the_user_as_text_with_their_extension_in_their_language() -> None:
    """The name is escaped, the extension and role read in the page's language."""
    ru = chrome.header_html(_user(Role.HEAD, HOSTILE), Translator.for_locale("ru"), "reports")
    assert "<img" not in ru
    assert "&lt;img src=x onerror=alert(1)&gt; · доб. 101 · руководитель отдела продаж" in ru
    en = chrome.header_html(_user(Role.MANAGER), Translator.for_locale("en"), "reports")
    assert "Анна Смирнова · ext. 101</span>" in en
    assert ">Log out</button>" in en


def test_heads_get_links_to_their_pages_and_managers_do_not() -> None:
    """Queues and board are linked for heads only; the current page is marked for screen readers."""
    tr = Translator.for_locale("en")
    head = chrome.header_html(_user(Role.HEAD), tr, "board")
    manager = chrome.header_html(_user(Role.MANAGER), tr, "reports")
    for href in (
        'href="/#calls"',
        'href="/reports/calls-vs-deals"',
        'href="/reports/queues"',
        'href="/board"',
    ):
        assert href in head
    assert 'href="/board"' not in manager
    assert 'href="/reports/queues"' not in manager
    assert 'data-testid="nav-board" aria-current="page"' in head
    assert 'data-testid="nav-reports" aria-current="page"' in manager


def test_language_switcher_names_each_language_in_itself_and_selects_the_current() -> None:
    """Each option carries its own lang= (a reader of the other language finds theirs); the page's is selected."""
    html = chrome.header_html(_user(Role.MANAGER), Translator.for_locale("ru"), "calls")
    assert '<option value="ru" lang="ru" selected>Русский</option>' in html
    assert '<option value="en" lang="en">English</option>' in html


def test_head_of_the_page_has_viewport_language_and_the_shared_styles() -> None:
    """Every server page fits a phone, says its language and loads the same style sheets and header script."""
    html = chrome.head_html(Translator.for_locale("en"), "Report <x>", ("/static/extra.css",))
    assert html.startswith('<!doctype html><html lang="en">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<title>Report &lt;x&gt;</title>" in html
    for sheet in ("/static/tokens.css", "/static/style.css", "/static/extra.css"):
        assert f'<link rel="stylesheet" href="{sheet}">' in html
    assert '<script type="module" src="/static/header.js"></script>' in html
