"""Which language a person gets: their stored choice, else their browser's first supported one, else Russian."""

from __future__ import annotations

from crmtel.i18n.catalogue import DEFAULT_LANGUAGE
from crmtel.i18n.translator import supported

# A header longer than this is not a browser's; only its start is read.
_MAX_HEADER = 1000


def accept_language(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (``q=0`` dropped)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header[:_MAX_HEADER].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip()))
    return [tag for *_, tag in sorted(ranked)]


def negotiate(stored: str | None, header: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The language to use: a stored choice crmtel speaks > Accept-Language > ``default``."""
    if (choice := supported(stored)) is not None:
        return choice
    for tag in accept_language(header):
        if (lang := supported(tag)) is not None:
            return lang
    return supported(default) or DEFAULT_LANGUAGE
