"""What the web app needs to speak to a person: languages, default, time zone, currency, catalogues."""

from __future__ import annotations

from dataclasses import dataclass, field

from crmtel.i18n.catalogue import DEFAULT_LANGUAGE, LANGUAGES, Catalogues
from crmtel.i18n.negotiate import negotiate
from crmtel.i18n.translator import Translator, shipped_catalogues


@dataclass(frozen=True, slots=True)
class LocaleOptions:
    """The configured language defaults; ``translator`` picks a person's language and binds the formats."""

    language: str = DEFAULT_LANGUAGE
    timezone: str = "Europe/Moscow"
    currency: str = "RUB"
    languages: tuple[str, ...] = LANGUAGES
    catalogues: Catalogues = field(default_factory=shipped_catalogues)

    def negotiate(self, stored: str | None, accept_language: str | None) -> str:
        """Stored choice > the browser's ``Accept-Language`` > the configured language."""
        return negotiate(stored, accept_language, self.language)

    def translator(self, stored: str | None, accept_language: str | None) -> Translator:
        """The translator for a person with this stored choice and browser header."""
        return Translator.for_locale(
            self.negotiate(stored, accept_language),
            zone=self.timezone,
            currency=self.currency,
            catalogues=self.catalogues,
        )
