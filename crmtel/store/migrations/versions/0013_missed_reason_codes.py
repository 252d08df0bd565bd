"""data: calls.missed_reason as stable codes instead of English text

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 13:30:00

Until this revision a missed call's reason was stored as English text ("caller hung up in queue"); it is a
code now (``crmtel.calls.reasons.MissedReason``: ``abandoned_in_queue``, ``caller_hung_up_ringing``,
``no_answer``, ``busy``), and the page, reports and exports take the words from the catalogues. Every stored
row is rewritten in one UPDATE per reason; the downgrade writes the texts back. Live-call snapshots
(``calls.live_state``) keep their text: the tracker reads both.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Text as stored before this revision -> code (fixed here: never read from the code's enum, which may change).
CODES = {
    "caller hung up while the manager's phone rang": "caller_hung_up_ringing",
    "caller hung up in queue": "abandoned_in_queue",
    "no answer": "no_answer",
    "busy": "busy",
}

_calls = sa.table("calls", sa.column("missed_reason", sa.String))


def upgrade() -> None:
    for text, code in CODES.items():
        if text != code:
            op.execute(_calls.update().where(_calls.c.missed_reason == text).values(missed_reason=code))


def downgrade() -> None:
    for text, code in CODES.items():
        if text != code:
            op.execute(_calls.update().where(_calls.c.missed_reason == code).values(missed_reason=text))
