"""The one-click result of a call, kept on its row (``calls.result``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from crmtel.store.db import Database
from crmtel.store.models import CallRow


class CallResults:
    """Sets (or clears) a call's result; the call writer never touches these columns."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(self, call_row_id: int, result: str | None, manager_id: int, at: datetime) -> None:
        """Keep ``result`` (None: cleared) as chosen by ``manager_id`` at ``at``."""
        async with self._db.session() as session:
            await session.execute(
                update(CallRow)
                .where(CallRow.id == call_row_id)
                .values(
                    result=result,
                    result_by=manager_id if result is not None else None,
                    result_at=at if result is not None else None,
                )
            )
