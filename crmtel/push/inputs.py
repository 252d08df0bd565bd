"""Request input validated at the edge: bounded JSON, typed bodies and queries, and 4xx (never 500) for bad input.

Every handler reads its input through ``read_body(request, Model)`` / ``read_query(request, Model)`` with a
pydantic model deriving from ``Body`` / ``Query`` (unknown fields refused, values typed and bounded); the
``input_errors`` middleware turns whatever is wrong with a request into a JSON 4xx naming the field:

- not JSON, too deep, invalid UTF-8 or a lone surrogate (``"\\ud800"``) → 400;
- a well-formed body or query with unknown fields, wrong types, out-of-range numbers or bad dates → 400 with
  ``fields``: ``[{"field": "before", "message": "..."}]``;
- a body larger than the app's ``client_max_size`` → 413; a body that is not ``application/json`` → 415;
- a body still incomplete ``BODY_SECONDS`` after the header → 408 (the header itself has ``web.header_timeout``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

import pydantic_core
import structlog
from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError

from crmtel.i18n import Translator
from crmtel.push.context import translator
from crmtel.push.input_messages import Problem, localize

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Real request bodies of this app are flat objects; nesting beyond this is an attack, not data.
MAX_DEPTH = 16
# The web app's ``client_max_size``: the largest body any handler reads.
MAX_BODY = 64 * 1024
# Seconds a client has to send its (at most 64 KiB) body once the header is in: a trickled body is cut off.
BODY_SECONDS = 30.0
# Integers bound to SQL parameters must fit a signed 64-bit column (``?before=10**30`` must not overflow).
MAX_ID = 2**63 - 1


class InputError(Exception):
    """Something is wrong with the request itself; becomes a JSON 4xx (400 unless ``status`` says otherwise)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        fields: list[dict[str, str]] | None = None,
        key: str | None = None,
        params: dict[str, object] | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.fields = fields or []
        # For the reader's language: the catalogue key of the message, or pydantic's problems per field.
        self.key = key
        self.params = params or {}
        self.problems = problems or []

    def response(self, tr: Translator | None = None) -> web.Response:
        """The JSON answer for this error, in ``tr``'s language when given."""
        body: dict[str, Any] = {"error": self.message}
        fields = self.fields
        if tr is not None:
            text, localized = localize(tr, self.key, self.params, self.problems)
            if text is not None:
                body["error"] = text
                fields = localized or fields
            if self.key is not None:
                body["code"] = self.key
        if fields:
            body["fields"] = fields
        return web.json_response(body, status=self.status)


def _drop_nul(value: object) -> object:
    # NUL cannot be stored in PostgreSQL text and is never meant: removed rather than refused.
    return value.replace("\x00", "") if isinstance(value, str) else value


# Trimmed text of bounded length, the common field types of request bodies.
ShortText = Annotated[
    str, BeforeValidator(_drop_nul), StringConstraints(strip_whitespace=True, max_length=300)
]
LongText = Annotated[
    str, BeforeValidator(_drop_nul), StringConstraints(strip_whitespace=True, max_length=5000)
]


class Body(BaseModel):
    """Base of JSON request bodies: unknown fields are refused, the result is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Query(BaseModel):
    """Base of query-string models: values arrive as text and are converted; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


B = TypeVar("B", bound=Body)
Q = TypeVar("Q", bound=Query)


def _depth_exceeds(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def load_json(raw: bytes | str, *, max_bytes: int = MAX_BODY, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON: bounded in size and nesting, strict UTF-8, no lone surrogates, no NaN."""
    if len(raw) > max_bytes:
        raise InputError(f"body is larger than {max_bytes} bytes", status=413, key="messages.body_too_large")
    try:
        # pydantic-core's parser (not the stdlib's): no RecursionError, refuses invalid UTF-8, lone surrogates
        # and NaN/Infinity, so nothing unencodable ever reaches the store.
        data = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as err:
        raise InputError(f"body is not valid JSON: {err}", key="messages.json_invalid") from err
    if _depth_exceeds(data, max_depth):
        raise InputError(
            f"body is nested deeper than {max_depth} levels",
            key="messages.json_too_deep",
            params={"depth": max_depth},
        )
    return data


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; only ``application/json`` is accepted (plain forms cannot post here)."""
    if request.content_type != "application/json":
        raise InputError("send application/json", status=415, key="messages.json_required")
    # ``read()`` already stops at the app's client_max_size (413, given a JSON body by the middleware).
    try:
        async with asyncio.timeout(BODY_SECONDS):
            raw = await request.read()
    except TimeoutError:
        raise InputError(
            f"the body did not arrive within {BODY_SECONDS:.0f} s",
            status=408,
            key="messages.body_timeout",
            params={"seconds": int(BODY_SECONDS)},
        ) from None
    return load_json(raw, max_bytes=len(raw))


def _field_errors(err: ValidationError) -> Iterator[tuple[dict[str, str], Problem]]:
    for e in err.errors(include_url=False, include_input=False):
        name = ".".join(str(p) for p in e["loc"]) or "body"
        yield {"field": name, "message": e["msg"]}, Problem(name, e["type"], dict(e.get("ctx") or {}))


def _invalid(err: ValidationError, what: str) -> InputError:
    found = list(_field_errors(err))[:20]
    fields = [f for f, _ in found]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
    key = "messages.input_invalid_query" if what == "query" else "messages.input_invalid"
    return InputError(f"invalid {what}: {summary}", fields=fields, key=key, problems=[p for _, p in found])


def parse_body(data: Any, model: type[B]) -> B:
    """Validate already-parsed JSON against a body model."""
    if not isinstance(data, dict):
        raise InputError("body must be a JSON object", key="messages.json_not_object")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise _invalid(err, "body") from err


async def read_body(request: web.Request, model: type[B]) -> B:
    """The request's JSON body as ``model``; any problem is an ``InputError``."""
    return parse_body(await read_json(request), model)


def read_query(request: web.Request, model: type[Q]) -> Q:
    """The query string as ``model`` (a key given twice is refused: which one was meant?)."""
    query = request.query
    for key in query:
        if len(query.getall(key)) > 1:
            raise InputError(
                f"invalid query: {key} is given more than once",
                key="messages.query_repeated",
                params={"name": key[:50]},
            )
    try:
        # A NUL as bodies' texts: PostgreSQL refuses it in any parameter (a manager login ``%00`` was a 503).
        return model.model_validate({key: _drop_nul(value) for key, value in query.items()})
    except ValidationError as err:
        raise _invalid(err, "query") from err


@web.middleware
async def input_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn bad input into a JSON 4xx wherever a handler noticed it."""
    try:
        return await handler(request)
    except InputError as err:
        return err.response(translator(request))
    except ValidationError as err:
        # A handler validating by hand with a model: still the client's mistake.
        return _invalid(err, "input").response(translator(request))
    except web.HTTPRequestEntityTooLarge:
        too_large = InputError("the request body is too large", status=413, key="messages.body_too_large")
        return too_large.response(translator(request))
    except (RecursionError, UnicodeError, OverflowError) as err:
        # Last line of defence: these only arise from input a handler failed to validate (a bug, so logged),
        # and the client still deserves a 400 rather than a 500.
        log.warning("push.unvalidated_input", path=request.path, error=repr(err)[:200])
        return InputError(
            "the request could not be processed: invalid input", key="messages.input_unprocessable"
        ).response(translator(request))
