"""The migration files form one chain, named by their position in it (crmtel/store/migrations/README.md)."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.script import Script, ScriptDirectory

from crmtel.store.db import alembic_config

# Released revisions written out of order: their files were renamed to their position, their ids kept because
# installed databases hold them in alembic_version. Position -> revision id; never change these.
LEGACY_IDS = {1: "0001", 2: "0002", 3: "0003", 4: "0006", 5: "0007", 6: "0005", 7: "0004"}

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.py$")


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def _chain() -> list[Script]:
    """The revisions from the first to the head."""
    return list(reversed(list(_scripts().walk_revisions())))


def test_one_head_and_one_base() -> None:
    """Exactly one head and one base: nobody landed a migration on top of a stale head."""
    scripts = _scripts()
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    assert len(scripts.get_bases()) == 1, scripts.get_bases()


def test_no_merge_or_branch_points() -> None:
    """Every migration revises exactly the one before it, so the chain is a line."""
    for script in _chain()[1:]:
        assert isinstance(script.down_revision, str), (script.revision, script.down_revision)


def test_file_prefix_is_position_in_chain() -> None:
    """File N (NNNN_what.py) is the N-th migration to run: reading the folder in order reads the chain."""
    chain = _chain()
    for position, script in enumerate(chain, start=1):
        name = Path(script.path).name
        match = _NAME.match(name)
        assert match is not None, f"{name}: a migration file is named NNNN_what.py"
        assert int(match.group(1)) == position, f"{name} runs at position {position} of the chain"


def test_every_file_is_in_the_chain() -> None:
    """No migration file sits outside the chain (a second file with the same prefix, a stray script)."""
    folder = Path(_chain()[0].path).parent
    files = sorted(p.name for p in folder.glob("*.py"))
    assert files == [Path(s.path).name for s in _chain()]


def test_released_ids_kept_and_new_ids_match_their_file() -> None:
    """The released ids stay as installed databases know them; from 0008 on, the revision id is the prefix."""
    for position, script in enumerate(_chain(), start=1):
        expected = LEGACY_IDS.get(position, f"{position:04d}")
        assert script.revision == expected, f"{Path(script.path).name}: revision {script.revision!r}"
