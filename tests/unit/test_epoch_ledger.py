"""The card-epoch ledger: a change committed but never announced is found once its grace has passed."""

from __future__ import annotations

from crmtel.push.cardcache import EpochLedger


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_announced_epochs_are_never_taken_for_missed_ones_even_out_of_order() -> None:
    """Epochs announced in any order, before or after the store shows them, leave nothing missed."""
    clock = Clock()
    ledger = EpochLedger(1.0, clock=clock)
    assert not ledger.missed(10)  # the first read is the starting point
    ledger.note(12)
    ledger.note(11)
    clock.now = 5.0
    assert not ledger.missed(12)
    assert not ledger.missed(13)  # committed, its announcement not here yet: within the grace
    ledger.note(13)
    clock.now = 10.0
    assert not ledger.missed(13)
    assert ledger.gaps == 0


def test_an_epoch_nobody_announced_is_missed_once_after_the_grace() -> None:
    """A node killed between commit and publish leaves epoch 11 unannounced: missed once, after the grace."""
    clock = Clock()
    ledger = EpochLedger(2.0, clock=clock)
    ledger.missed(10)
    ledger.note(12)
    assert not ledger.missed(12)
    clock.now = 1.9
    assert not ledger.missed(12)
    clock.now = 2.0
    assert ledger.missed(12)
    assert not ledger.missed(12)  # reported once
    assert ledger.gaps == 1


def test_a_counter_started_again_is_a_new_starting_point() -> None:
    """The epoch row emptied by hand and started again (a smaller epoch): no false alarm."""
    clock = Clock()
    ledger = EpochLedger(1.0, clock=clock)
    ledger.missed(500)
    assert not ledger.missed(1)
    ledger.note(2)
    clock.now = 3.0
    assert not ledger.missed(2)
