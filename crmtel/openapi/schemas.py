"""Which model describes each route's request body, query string and JSON answer (the OpenAPI document's
components come from these classes: the very models the handlers parse with, and answer with where they
answer through a model; ``shapes.py`` for the answers built as dicts)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from crmtel.callbacks.web import CallbacksQuery, CloseBody, SearchQuery
from crmtel.crm.export import PartyCsvQuery
from crmtel.crm.schemas import (
    ConvertIn,
    CrmSettingsOut,
    EditOut,
    IdOut,
    ManagersOut,
    MergeIn,
    MergeOut,
    NoteIn,
    PartyCreate,
    PartyEdit,
    PartyListOut,
    PartyListQuery,
    PartyOut,
    SharesIn,
    TimelineQuery,
)
from crmtel.crm.timeline import TimelinePageOut
from crmtel.deals.web import (
    DealCreate,
    DealCsvQuery,
    DealEdit,
    DealListOut,
    DealListQuery,
    DealOut,
    PipelineOut,
    PipelineQuery,
)
from crmtel.dial.web import BrowserDialBody, DialBody
from crmtel.openapi.shapes import (
    BoardOut,
    BrowserDialOut,
    CallbackListOut,
    CallbackTaskJson,
    CallDealJson,
    CallDetailOut,
    CallJson,
    CallLeadOut,
    CallListOut,
    CallNoteJson,
    CallResultsOut,
    CallTaskJson,
    DialOut,
    ErrorOut,
    MeOut,
    OkOut,
    PhoneRegistrationOut,
    SearchOut,
)
from crmtel.push.api import CallsQuery, DealBody, LeadBody, NoteBody, TaskBody
from crmtel.push.calls_csv import CallsCsvQuery
from crmtel.push.web import LocaleBody, LoginBody, MobileBody
from crmtel.results.web import ResultBody
from crmtel.tasks.web import (
    TaskComplete,
    TaskCreate,
    TaskCsvQuery,
    TaskEdit,
    TaskListOut,
    TaskListQuery,
    TaskOut,
)

Route = tuple[str, str]

# (method, path) -> the JSON body it reads.
REQUESTS: dict[Route, type[BaseModel]] = {
    ("POST", "/api/login"): LoginBody,
    ("PUT", "/api/me/locale"): LocaleBody,
    ("PUT", "/api/me/mobile"): MobileBody,
    ("POST", "/api/calls/{call_id}/notes"): NoteBody,
    ("POST", "/api/calls/{call_id}/lead"): LeadBody,
    ("POST", "/api/calls/{call_id}/deals"): DealBody,
    ("POST", "/api/calls/{call_id}/tasks"): TaskBody,
    ("PUT", "/api/calls/{call_id}/result"): ResultBody,
    ("POST", "/api/callbacks/{task_id}/close"): CloseBody,
    ("POST", "/api/{kind}"): PartyCreate,
    ("PATCH", "/api/{kind}/{party_id}"): PartyEdit,
    ("POST", "/api/{kind}/{party_id}/notes"): NoteIn,
    ("PUT", "/api/{kind}/{party_id}/shares"): SharesIn,
    ("POST", "/api/{kind}/{party_id}/merge"): MergeIn,
    ("POST", "/api/leads/{party_id}/convert"): ConvertIn,
    ("POST", "/api/deals"): DealCreate,
    ("PATCH", "/api/deals/{deal_id}"): DealEdit,
    ("POST", "/api/tasks"): TaskCreate,
    ("PATCH", "/api/tasks/{task_id}"): TaskEdit,
    ("POST", "/api/tasks/{task_id}/complete"): TaskComplete,
    ("POST", "/api/dial"): DialBody,
    ("POST", "/api/dial/browser"): BrowserDialBody,
}

# (method, path) -> the query string it reads (each field a parameter).
QUERIES: dict[Route, type[BaseModel]] = {
    ("GET", "/api/calls"): CallsQuery,
    ("GET", "/api/calls.csv"): CallsCsvQuery,
    ("GET", "/api/callbacks"): CallbacksQuery,
    ("GET", "/api/search"): SearchQuery,
    ("GET", "/api/{kind}"): PartyListQuery,
    ("GET", "/api/{kind}.csv"): PartyCsvQuery,
    ("GET", "/api/{kind}/{party_id}/timeline"): TimelineQuery,
    ("GET", "/api/deals"): DealListQuery,
    ("GET", "/api/deals.csv"): DealCsvQuery,
    ("GET", "/api/deals/pipeline"): PipelineQuery,
    ("GET", "/api/tasks"): TaskListQuery,
    ("GET", "/api/tasks.csv"): TaskCsvQuery,
}

# (method, path) -> {status: the JSON answer}.
RESPONSES: dict[Route, dict[int, type[BaseModel]]] = {
    ("POST", "/api/login"): {200: MeOut},
    ("POST", "/api/logout"): {200: OkOut},
    ("GET", "/api/me"): {200: MeOut},
    ("PUT", "/api/me/locale"): {200: MeOut},
    ("PUT", "/api/me/mobile"): {200: MeOut},
    ("GET", "/api/call-results"): {200: CallResultsOut},
    ("GET", "/api/calls"): {200: CallListOut},
    ("GET", "/api/calls/{call_id}"): {200: CallDetailOut},
    ("POST", "/api/calls/{call_id}/notes"): {201: CallNoteJson},
    ("POST", "/api/calls/{call_id}/lead"): {200: CallLeadOut, 201: CallLeadOut},
    ("POST", "/api/calls/{call_id}/deals"): {201: CallDealJson},
    ("POST", "/api/calls/{call_id}/tasks"): {201: CallTaskJson},
    ("PUT", "/api/calls/{call_id}/result"): {200: CallJson},
    ("GET", "/api/callbacks"): {200: CallbackListOut},
    ("POST", "/api/callbacks/{task_id}/close"): {200: CallbackTaskJson},
    ("GET", "/api/search"): {200: SearchOut},
    ("GET", "/api/crm/settings"): {200: CrmSettingsOut},
    ("GET", "/api/managers"): {200: ManagersOut},
    ("GET", "/api/{kind}"): {200: PartyListOut},
    ("POST", "/api/{kind}"): {201: IdOut},
    ("GET", "/api/{kind}/{party_id}"): {200: PartyOut},
    ("PATCH", "/api/{kind}/{party_id}"): {200: EditOut},
    ("POST", "/api/{kind}/{party_id}/merge"): {200: MergeOut},
    ("POST", "/api/{kind}/{party_id}/notes"): {201: IdOut},
    ("PUT", "/api/{kind}/{party_id}/shares"): {200: PartyOut},
    ("GET", "/api/{kind}/{party_id}/timeline"): {200: TimelinePageOut},
    ("POST", "/api/leads/{party_id}/convert"): {201: IdOut},
    ("GET", "/api/deals"): {200: DealListOut},
    ("POST", "/api/deals"): {201: DealOut},
    ("GET", "/api/deals/pipeline"): {200: PipelineOut},
    ("GET", "/api/deals/{deal_id}"): {200: DealOut},
    ("PATCH", "/api/deals/{deal_id}"): {200: DealOut},
    ("GET", "/api/tasks"): {200: TaskListOut},
    ("POST", "/api/tasks"): {201: TaskOut},
    ("PATCH", "/api/tasks/{task_id}"): {200: TaskOut},
    ("POST", "/api/tasks/{task_id}/complete"): {200: TaskOut},
    ("POST", "/api/tasks/{task_id}/reopen"): {200: TaskOut},
    ("POST", "/api/dial"): {200: DialOut, 202: DialOut},
    ("POST", "/api/dial/browser"): {200: BrowserDialOut},
    ("GET", "/api/dial/{originate_id}"): {200: DialOut},
    ("GET", "/api/phone"): {200: PhoneRegistrationOut},
    ("GET", "/api/board"): {200: BoardOut},
}

REF = "#/components/schemas/{model}"


def _strict(schema: Any) -> None:
    """Answers carry exactly their fields: an object with properties allows no others (unless it says so)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _strict(value)
    elif isinstance(schema, list):
        for value in schema:
            _strict(value)


def components() -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """The ``$ref`` of every request and response model, and the schemas they point to."""
    inputs = sorted(set(REQUESTS.values()), key=lambda m: m.__name__)
    outputs = sorted(
        {m for answers in RESPONSES.values() for m in answers.values()} | {ErrorOut}, key=lambda m: m.__name__
    )
    keys, defs = models_json_schema(
        [(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs], ref_template=REF
    )
    schemas: dict[str, Any] = defs.get("$defs", {})
    requests = {m.__name__: keys[(m, "validation")]["$ref"] for m in inputs}
    responses = {m.__name__: keys[(m, "serialization")]["$ref"] for m in outputs}
    # Request models refuse unknown fields already (additionalProperties false); answers are held to theirs.
    for name, schema in schemas.items():
        if name != "ErrorOut":
            _strict(schema)
    return requests, responses, schemas


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI parameters (by their names in the URL)."""
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]
