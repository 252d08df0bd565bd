"""The checks that touch the machine: free ports, and with ``--connect`` the database and each AMI login."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from crmtel.ami.client import AmiClient, AmiError, LoginFailed
from crmtel.ami.protocol import Message
from crmtel.config import Settings
from crmtel.configcheck.checks import database_url_problem
from crmtel.configcheck.messages import Problem, mask_url
from crmtel.configcheck.origins import Loc, Origins
from crmtel.errors import StoreUnavailable
from crmtel.store.db import Database
from crmtel.store.managers import staff_in

CONNECT_TIMEOUT = 5.0


def _bind_problem(host: str, port: int) -> tuple[str, str] | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        return (
            f'cannot resolve "{host}": {err.strerror}',
            "an address of this machine such as 127.0.0.1 or 0.0.0.0",
        )
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # Like asyncio's servers: a port left in TIME_WAIT by a previous run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return (
                    f"cannot listen on {host}:{port}: it is in use",
                    "a free port, or stop the program that listens there",
                )
            if err.errno == errno.EACCES:
                return (
                    f"cannot listen on {host}:{port}: permission denied",
                    "a port ≥ 1024 (crmtel runs without privileges)",
                )
            if err.errno == errno.EADDRNOTAVAIL:
                return (
                    f"cannot listen on {host}:{port}: {host} is not an address of this machine",
                    "127.0.0.1, 0.0.0.0 or one of this machine's addresses",
                )
            return (
                f"cannot listen on {host}:{port}: {err.strerror or err}",
                "a free port on an address of this machine",
            )
    return None


def port_problems(settings: Settings, origins: Origins) -> list[Problem]:
    """The web and FastAGI ports: can crmtel listen there right now?"""
    problems = []
    for loc, host, port in (
        (("web", "port"), settings.web.host, settings.web.port),
        (("routing", "agi_port"), settings.routing.agi_host, settings.routing.agi_port),
    ):
        if port == 0:
            continue
        found = _bind_problem(host, port)
        if found is not None:
            problems.append(Problem(origins.of(loc), *found))
    return problems


def _reason(err: BaseException) -> str:
    cause = err.__cause__ if isinstance(err, StoreUnavailable) and err.__cause__ is not None else err
    if isinstance(cause, DBAPIError) and cause.orig is not None:
        cause = cause.orig
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else cause.__class__.__name__
    return mask_url(text)


async def database_problem(settings: Settings, origins: Origins) -> Problem | None:
    """Can crmtel open the database (a ``SELECT 1``)?"""
    if database_url_problem(settings.database_url) is not None:
        return None  # already reported, and an unusable URL cannot be tried
    db = Database(settings.database_url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await db.ping()
    except TimeoutError:
        what = f"the database did not answer within {CONNECT_TIMEOUT:.0f} s"
    except (StoreUnavailable, SQLAlchemyError, OSError) as err:
        what = f"cannot open the database: {_reason(err)}"
    else:
        return None
    finally:
        await db.dispose()
    return Problem(
        origins.of(("database_url",)),
        what,
        "a running server, the right user and password, an existing database",
    )


async def owner_problems(settings: Settings, origins: Origins) -> list[Problem]:
    """The owners ``[calls]`` names (``default_owner``, ``queue_owners``) are active managers in the database.

    Nothing is reported when the database cannot be read (``database_problem`` says why) or has no tables yet.
    """
    calls = settings.calls
    named: list[tuple[Loc, str]] = [
        (("calls", "queue_owners", q), login) for q, login in calls.queue_owners.items()
    ]
    if calls.default_owner is not None:
        named.append((("calls", "default_owner"), calls.default_owner))
    if not named or database_url_problem(settings.database_url) is not None:
        return []
    db = Database(settings.database_url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT), db.session() as session:
            staff = await staff_in(session, (), [login for _, login in named])
    except (TimeoutError, StoreUnavailable, SQLAlchemyError, OSError):
        return []
    finally:
        await db.dispose()
    problems: list[Problem] = []
    for loc, login in named:
        if staff.active(staff.by_login.get(login)) is None:
            what = "is no longer active" if login in staff.by_login else "is no manager's login"
            problems.append(
                Problem(
                    origins.of(loc),
                    f'"{login}" {what}',
                    "the login of an active manager (crmtel managers list)",
                )
            )
    return problems


class _Nowhere:
    """A login probe reads no events worth keeping."""

    async def on_event(self, pbx: str, message: Message, at: datetime) -> None:
        """Dropped."""

    async def on_resync(self, pbx: str, channels: Sequence[Message], at: datetime) -> None:
        """Dropped."""

    async def on_idle(self, pbx: str) -> None:
        """Nothing to do."""

    async def on_lost(self, pbx: str, at: datetime) -> None:
        """Nothing to do."""


async def ami_problems(settings: Settings, origins: Origins) -> list[Problem]:
    """Log in to every enabled PBX once (and log off)."""
    problems = []
    for index, pbx in enumerate((settings.ami, *settings.pbx)):
        if not pbx.enabled:
            continue
        loc: Loc = ("ami",) if index == 0 else ("pbx", index - 1)
        where = f'PBX "{pbx.name}" at {pbx.host}:{pbx.port}'
        client = AmiClient(pbx, _Nowhere(), connect_timeout=CONNECT_TIMEOUT, action_timeout=CONNECT_TIMEOUT)
        try:
            await client.probe()
        except LoginFailed as err:
            problems.append(
                Problem(
                    origins.of((*loc, "secret")),
                    f'{where} refused the login of user "{pbx.username}": {err}',
                    "the username and secret of crmtel's user in Asterisk's manager.conf (manager.d/crmtel.conf)",
                )
            )
        except (OSError, TimeoutError, AmiError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else (str(err) or "no answer")
            problems.append(
                Problem(
                    origins.of((*loc, "host")),
                    f"cannot reach the AMI of {where}: {reason}",
                    "the host and port of Asterisk's manager.conf [general] (enabled = yes, bindaddr, port)",
                )
            )
    return problems
