"""Typed rows of the queue report: per queue, per member of a queue, and the hour × weekday heatmap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crmtel.reports.models import Period


@dataclass(frozen=True, slots=True)
class MemberFigures:
    """One member (a real phone) of one queue: how often the queue rang it and how often it took the call."""

    extension: str
    name: str | None
    login: str | None
    offered: int
    answered: int

    @property
    def rang_unanswered(self) -> int:
        """Offers it did not take (it rang out, was busy, or someone else answered first)."""
        return self.offered - self.answered


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """One queue's figures for a period (waits are in seconds; averages None when nothing to average)."""

    queue: str
    offered: int
    answered: int
    abandoned: int
    exited: int
    answered_within_sl: int
    wait_avg_s: float | None
    wait_p90_s: float | None
    abandon_wait_avg_s: float | None
    talk_avg_s: float | None
    members: tuple[MemberFigures, ...] = ()

    @property
    def service_level_pct(self) -> float | None:
        """Calls answered within the service-level time ÷ calls offered × 100."""
        return 100 * self.answered_within_sl / self.offered if self.offered else None


@dataclass(frozen=True, slots=True)
class QueueReport:
    """The queue report of a period (optionally one queue)."""

    period: Period
    queue: str | None
    service_level_seconds: int
    queues: tuple[QueueFigures, ...]
    generated_at: datetime


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Heatmap:
    """Inbound and missed calls by local weekday (0 = Monday) and hour of the call's start."""

    period: Period
    inbound: tuple[tuple[int, ...], ...]  # [weekday][hour]
    missed: tuple[tuple[int, ...], ...]

    @staticmethod
    def empty_grid() -> list[list[int]]:
        """Seven rows of 24 zeros."""
        return [[0] * 24 for _ in WEEKDAYS]

    @property
    def total_inbound(self) -> int:
        """Every inbound call counted."""
        return sum(map(sum, self.inbound))

    @property
    def total_missed(self) -> int:
        """Every missed call counted."""
        return sum(map(sum, self.missed))
