"""What ``run`` refuses, checked up front on the loaded settings (pure: no sockets, no database)."""

from __future__ import annotations

import string
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crmtel.config import Settings
from crmtel.configcheck.messages import Problem, mask_url
from crmtel.configcheck.origins import Loc, Origins
from crmtel.errors import ConfigError
from crmtel.routing.models import Policy

DATABASE_EXAMPLES = (
    "sqlite+aiosqlite:////var/lib/crmtel/crmtel.db or "
    "postgresql+asyncpg://crmtel:PASSWORD@127.0.0.1:5432/crmtel"
)
# The async driver crmtel talks to each database with.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
RECORDING_FIELDS = frozenset({"pbx", "basename", "linkedid", "path", "relpath"})
ZONE_EXAMPLE = 'an IANA time zone such as "Europe/Moscow" or "Asia/Yekaterinburg"'


def database_url_problem(url: str) -> tuple[str, str] | None:
    """``(what is wrong, what would be valid)`` for a database URL crmtel cannot use, else None."""
    quoted = f'"{mask_url(url)}"'
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"{quoted} is not a database URL", DATABASE_EXAMPLES
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    wanted = ASYNC_DRIVERS.get(backend)
    if wanted is None:
        return (
            f"{quoted}: crmtel keeps its records in SQLite or PostgreSQL, not {backend}",
            DATABASE_EXAMPLES,
        )
    if driver != wanted:
        fixed = parsed.set(drivername=f"{backend}+{wanted}").render_as_string(hide_password=True)
        return f"{quoted} names the synchronous driver {driver}; crmtel needs {wanted}", f'"{fixed}"'
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            return (
                f"cannot open the database {quoted}: the folder {folder} does not exist",
                f"an existing folder the crmtel user may write to (install -d -o crmtel {folder})",
            )
    return None


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _template_fields(template: str) -> set[str] | None:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return None


def check_settings(settings: Settings, origins: Origins) -> list[Problem]:
    """Every mistake ``run`` would stop at (or silently live with), one Problem each."""
    problems: list[Problem] = []

    def add(loc: Loc, what: str, valid: str) -> None:
        problems.append(Problem(origins.of(loc), what, valid))

    bad_url = database_url_problem(settings.database_url)
    if bad_url is not None:
        add(("database_url",), *bad_url)

    routing = settings.routing
    before = len(problems)
    for zone_loc, zone in (
        (("routing", "timezone"), routing.timezone),
        (("reports", "timezone"), settings.reports.timezone),
    ):
        if zone is not None and not _zone_ok(zone):
            add(zone_loc, f'unknown time zone "{zone}"', ZONE_EXAMPLE)
    wrong_days = sorted({d for d in routing.working_days if not 0 <= d <= 6})
    if wrong_days:
        add(
            ("routing", "working_days"),
            f"{', '.join(map(str, wrong_days))} {'is not a weekday' if len(wrong_days) == 1 else 'are not weekdays'}",
            "0 (Monday) … 6 (Sunday), e.g. [0, 1, 2, 3, 4]",
        )
    if len(problems) == before:
        # The routing policy's own checks (queue names, hours), once time zone and weekdays are right.
        try:
            Policy.from_settings(routing, settings.region)
        except ConfigError as err:
            label, _, what = str(err).partition(": ")
            add(tuple(label.split(".")), what or str(err), "")

    fields = _template_fields(settings.calls.recording_url_template)
    unknown = sorted(fields - RECORDING_FIELDS) if fields is not None else []
    if fields is None or unknown:
        what = f"unknown placeholder {{{unknown[0]}}}" if unknown else "is not a valid template"
        add(
            ("calls", "recording_url_template"),
            what,
            "empty (crmtel serves recordings at /api/calls/{id}/recording) or a URL using "
            + ", ".join(f"{{{f}}}" for f in sorted(RECORDING_FIELDS)),
        )

    web, agi = settings.web, settings.routing
    if web.port and web.port == agi.agi_port and web.host == agi.agi_host:
        add(
            ("routing", "agi_port"), f"{agi.agi_port} is also web.port", "two different ports (4573 and 8080)"
        )
    for index, pbx in enumerate((settings.ami, *settings.pbx)):
        at: Loc = ("ami",) if index == 0 else ("pbx", index - 1)
        if pbx.enabled and not pbx.secret.get_secret_value():
            add(
                (*at, "secret"),
                f'no AMI secret for PBX "{pbx.name}"',
                "the secret of the crmtel user in manager.conf, e.g. CRMTEL_AMI__SECRET in /etc/crmtel/crmtel.env",
            )
        if pbx.reconnect_min > pbx.reconnect_max:
            add(
                (*at, "reconnect_min"),
                f"{pbx.reconnect_min} is above reconnect_max",
                "reconnect_min ≤ reconnect_max",
            )
    if settings.bitrix24.webhook_mode:
        # Documented by Bitrix24 (2026-03): telephony.externalCall.register/finish answer WRONG_AUTH_TYPE to an
        # incoming webhook, so no call would ever reach the portal; only the responsible-manager lookup works.
        add(
            ("bitrix24", "webhook_url"),
            "Bitrix24 refuses telephony.externalCall.register/finish through an incoming webhook "
            "(WRONG_AUTH_TYPE): calls will not reach Bitrix24, only the responsible-manager lookup works",
            "a local application: [bitrix24] portal, client_id, client_secret (webhook_url empty)",
        )
    return problems
