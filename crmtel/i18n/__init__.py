"""Words and formats in the user's language: message catalogues, Babel formats, locale negotiation."""

from crmtel.i18n.catalogue import DEFAULT_LANGUAGE, LANGUAGES, Catalogues
from crmtel.i18n.formats import AmountError, parse_amount
from crmtel.i18n.negotiate import negotiate
from crmtel.i18n.translator import Translator, shipped_catalogues, supported

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "AmountError",
    "Catalogues",
    "Translator",
    "negotiate",
    "parse_amount",
    "shipped_catalogues",
    "supported",
]
