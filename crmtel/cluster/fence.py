"""Fencing: a node writes a PBX's calls only while the PBX's lease still carries the epoch it took over with."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from crmtel.store.leases import epochs_in

log = structlog.get_logger(__name__)


class EpochFence:
    """The epochs this node holds; ``admit`` is called inside every call-writing transaction."""

    def __init__(self) -> None:
        self._epochs: dict[str, int] = {}
        self._lost: dict[str, asyncio.Event] = {}
        self.rejected = 0

    def hold(self, pbx: str, epoch: int, lost: asyncio.Event) -> None:
        """This node now leads ``pbx`` with ``epoch``; ``lost`` is set when a write finds the lease taken."""
        self._epochs[pbx] = epoch
        self._lost[pbx] = lost

    def release(self, pbx: str) -> None:
        """This node no longer leads ``pbx``: every later write of it is refused."""
        self._epochs.pop(pbx, None)
        self._lost.pop(pbx, None)

    def epoch(self, pbx: str) -> int | None:
        """The epoch held for ``pbx``, if this node leads it."""
        return self._epochs.get(pbx)

    async def admit(self, session: AsyncSession, pbxes: Collection[str]) -> set[str]:
        """The PBXs of ``pbxes`` whose writes may go ahead in this transaction (the lease rows stay locked)."""
        current = await epochs_in(session, pbxes)
        admitted = {pbx for pbx in pbxes if pbx in self._epochs and current.get(pbx) == self._epochs[pbx]}
        for pbx in set(pbxes) - admitted:
            self.rejected += 1
            log.warning("cluster.write_fenced", pbx=pbx, held=self._epochs.get(pbx), current=current.get(pbx))
            lost = self._lost.get(pbx)
            if lost is not None:
                lost.set()
        return admitted
