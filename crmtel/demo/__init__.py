"""Demo data matching the built-in AMI simulator's numbers, so `crmtel demo` shows real cards, history, reports."""

from __future__ import annotations

from pathlib import Path

from crmtel.demo.history import seed_history
from crmtel.demo.people import DEMO_LOGINS, DEMO_PASSWORD, DemoLogin, seed_people
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from crmtel.store.parties import PartyRepository

__all__ = ["DEMO_LOGINS", "DEMO_PASSWORD", "DemoLogin", "seed"]


async def seed(
    db: Database,
    managers: ManagerRepository,
    parties: PartyRepository,
    *,
    recordings_dir: Path | None = None,
    timezone: str = "Europe/Moscow",
) -> bool:
    """Create the demo's people and two months of history unless they exist; True when something was created."""
    people = await seed_people(managers, parties)
    if people is None:
        return False
    await seed_history(db, people, recordings_dir=recordings_dir, timezone=timezone)
    return True
