"""Amounts typed on the page, read in the manager's language: ``150 000,50`` becomes ``Decimal("150000.50")``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from aiohttp import web
from pydantic import BeforeValidator, StringConstraints

from crmtel.i18n import AmountError
from crmtel.push.context import translator
from crmtel.push.inputs import InputError

# Deals are stored as NUMERIC(16, 2); anything from ten trillion on is a typo, not a deal.
MAX_AMOUNT = Decimal("1e13")


def _number_as_text(value: object) -> object:
    # A JSON number is taken as written; text is parsed in the manager's locale by ``deal_amount``.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# An amount field of a request body: text as typed (or a JSON number), bounded; empty means 0.
AmountText = Annotated[str, BeforeValidator(_number_as_text), StringConstraints(max_length=100)]


def deal_amount(request: web.Request, typed: str) -> Decimal:
    """The typed amount as an exact Decimal with at most two decimals, within range, or a translated 400."""
    tr = translator(request)
    try:
        amount = tr.amount(typed) if typed.strip() else Decimal(0)
    except AmountError:
        key = "messages.amount_invalid"
    else:
        if not Decimal(0) <= amount < MAX_AMOUNT:
            key = "messages.amount_range"
        elif amount != amount.quantize(Decimal("0.01")):
            key = "messages.amount_decimals"
        else:
            return amount.quantize(Decimal("0.01"))
    message = tr.t(key)
    raise InputError(message, key=key, fields=[{"field": "amount", "message": message}])
