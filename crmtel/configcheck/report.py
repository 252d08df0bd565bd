"""The whole check of ``crmtel config check`` (and the part of it ``run`` does before starting)."""

from __future__ import annotations

from crmtel.config import Settings
from crmtel.configcheck.checks import check_settings
from crmtel.configcheck.messages import Problem
from crmtel.configcheck.origins import Origins
from crmtel.configcheck.probes import ami_problems, database_problem, owner_problems, port_problems
from crmtel.configcheck.webphone import address_problems, connect_problems


async def all_problems(settings: Settings, origins: Origins, *, connect: bool = False) -> list[Problem]:
    """The settings' own mistakes, the ports; with ``connect`` also the database and every AMI login."""
    problems = check_settings(settings, origins)
    problems += address_problems(settings, origins)
    problems += port_problems(settings, origins)
    if connect:
        found = await database_problem(settings, origins)
        if found is not None:
            problems.append(found)
        else:
            problems += await owner_problems(settings, origins)
        problems += await ami_problems(settings, origins)
        problems += await connect_problems(settings, origins)
    return problems
