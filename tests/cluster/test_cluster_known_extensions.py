"""Every node of a cluster learns a manager added while it runs: the classifier's extensions (a desk phone 9913
beside extension 13 is that phone, not 13's browser phone) follow the CLI's and the other nodes' changes."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from crmtel.calls.extensions import KnownExtensions
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.cluster.test_card_invalidation import Node, node
from tests.fixtures.fake_ami import wait_for


@asynccontextmanager
async def learning(member: Node) -> AsyncIterator[KnownExtensions]:
    """A node's known extensions, wired as ``crmtel.app`` wires them (its commits and the channel's)."""
    known = KnownExtensions(member.db)
    member.db.on_change(known.changed)
    member.channel.also_tell(known.changed)
    await known.load()
    try:
        yield known
    finally:
        await known.aclose()


async def _cli_manager_add(database_url: str, login: str, extension: str) -> None:
    """`crmtel manager add` in a process of its own (no node: its change is only the store's card epoch)."""
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crmtel.cli",
        "manager",
        "add",
        "--login",
        login,
        "--name",
        login.title(),
        "--extension",
        extension,
        env=dict(os.environ, CRMTEL_DATABASE_URL=database_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await done.communicate()
    assert done.returncode == 0, err


async def test_a_manager_added_by_the_cli_or_on_another_node_reaches_every_node(
    database_url: str, stream_name: str
) -> None:
    """petr (9913) added by the CLI reaches nodes A and B (the unannounced card epoch); vera (9914) saved by
    node A's own process reaches A at its commit and B over the cluster's channel."""
    first = Database(database_url)
    try:
        await ManagerRepository(first).save(login="ivan", name="Иван", extensions=("13",))
    finally:
        await first.dispose()
    async with (
        node(database_url, "a", stream_name, numbered=True, grace=0.5) as a,
        node(database_url, "b", stream_name, numbered=True, grace=0.5) as b,
        learning(a) as known_a,
        learning(b) as known_b,
    ):
        assert known_a.current == known_b.current == {"13"}
        await _cli_manager_add(database_url, "petr", "9913")
        await wait_for(lambda: "9913" in known_a.current and "9913" in known_b.current, limit=15)

        await ManagerRepository(a.db).save(login="vera", name="Вера", extensions=("9914",))
        # Announced on the channel, so no epoch gap tells B: only the channel's change does.
        await wait_for(lambda: "9914" in known_a.current and "9914" in known_b.current, limit=15)
        assert b.channel.ledger.gaps >= 1  # the CLI's change was unannounced
