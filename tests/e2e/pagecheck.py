"""What a browser test checks on any crmtel page: the language of what is on screen, accessibility (axe-core)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from crmtel.i18n import shipped_catalogues

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
_PARAM = re.compile(r"\{\w+\}")
_LATIN = re.compile(r"[A-Za-z]{2,}")
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")

# Every visible text node, plus the labels a screen reader reads (aria-label, title, placeholder), of
# elements that are rendered; text inside an element marked with another language (lang=) is that
# language on purpose (the language switcher names each language in itself) and is left out.
_VISIBLE_TEXTS = """
() => {
  const lang = document.documentElement.lang;
  const foreign = (el) => { const l = el.closest("[lang]"); return l && l.lang !== lang; };
  const shown = (el) => el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true });
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    const text = node.textContent.trim();
    if (!text || !el || foreign(el) || !shown(el)) continue;
    if (el.closest("select") && !el.closest("option:checked")) continue;
    out.push(text);
  }
  for (const el of document.body.querySelectorAll("[aria-label], [title], [placeholder]")) {
    if (foreign(el) || !shown(el)) continue;
    for (const a of ["aria-label", "title", "placeholder"]) if (el.getAttribute(a)) out.push(el.getAttribute(a));
  }
  out.push(document.title);
  return out;
}
"""


def _fragments(message: object) -> Iterable[str]:
    texts = (
        [message] if isinstance(message, str) else list(message.values()) if isinstance(message, dict) else []
    )
    for text in texts:
        for part in _PARAM.split(str(text)):
            part = part.strip(" .,:;·—–()%/")
            if sum(ch.isalpha() for ch in part) >= 3:
                yield part


@cache
def foreign_words(lang: str) -> frozenset[str]:
    """Fragments of the other language's catalogue that this language's never uses."""
    catalogues = shipped_catalogues()
    other = "en" if lang == "ru" else "ru"
    own = {
        f
        for m in catalogues.language(lang).values()
        for f in _fragments(dict(m) if not isinstance(m, str) else m)
    }
    theirs = {
        f
        for m in catalogues.language(other).values()
        for f in _fragments(dict(m) if not isinstance(m, str) else m)
    }
    return frozenset(theirs - own)


async def visible_texts(page: Page) -> list[str]:
    """The texts a person sees (or hears from a screen reader) on the page now."""
    texts: list[str] = await page.evaluate(_VISIBLE_TEXTS)
    return [" ".join(t.replace("\xa0", " ").replace("\u202f", " ").split()) for t in texts]


async def assert_language(page: Page, lang: str, data: Iterable[str] = ()) -> None:
    """Nothing on screen is in the other language: no phrase of its catalogue, and no word in its script
    once the data shown as it is stored (names, numbers, zone names) is set aside."""
    assert await page.evaluate("document.documentElement.lang") == lang
    words = foreign_words(lang)
    allowed = sorted({"crmtel", "E-mail", "CSV", "XLSX", "JSON", *data}, key=len, reverse=True)
    script = _LATIN if lang == "ru" else _CYRILLIC
    wrong: list[str] = []
    for text in await visible_texts(page):
        rest = text
        for item in allowed:
            rest = rest.replace(item, " ")
        hits = [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", rest)]
        if hits or script.search(rest):
            wrong.append(f"{text!r} {hits or ''}")
    assert not wrong, f"text not in {lang}: " + "; ".join(wrong)


async def axe_violations(page: Page, include: str | None = None) -> list[dict[str, Any]]:
    """Serious and critical axe-core (WCAG 2.1 A/AA) violations on the page (or inside ``include``)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, so the page's Content-Security-Policy does not apply.
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result: dict[str, Any] = await page.evaluate(
        """async (include) => axe.run(include ? document.querySelector(include) : document,
             { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } })""",
        include,
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"][:5]],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def assert_no_axe(page: Page, where: str) -> None:
    """No serious or critical axe-core violation on the page; ``where`` names it in the failure."""
    found = await axe_violations(page)
    assert found == [], f"axe on {where}: {found}"


async def assert_fits(page: Page, where: str = "") -> None:
    """The page is no wider than the screen (nothing to scroll sideways)."""
    size = page.viewport_size
    assert size is not None
    assert await page.evaluate("document.documentElement.scrollWidth") <= size["width"], where
