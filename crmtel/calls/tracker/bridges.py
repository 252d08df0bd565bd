"""Bridges and transfers: who is talking to whom, and who takes a call over."""

from __future__ import annotations

from dataclasses import replace

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind, local_base
from crmtel.calls.tracker.core import answer, answer_by_bridge, attach, leg_of, unbridge
from crmtel.calls.tracker.model import Leg
from crmtel.calls.tracker.tx import Tx


def on_bridge_enter(tx: Tx, event: ev.BridgeEnter) -> None:
    call = attach(tx, event.channel)
    if call is None:
        return
    uid = event.channel.uniqueid
    leg = call.legs[uid]
    if leg.bridge is not None and leg.bridge != event.bridge_id:
        unbridge(tx, leg.bridge, uid)
    members = tx.bridge_members(event.bridge_id)
    if uid not in members:
        members = (*members, uid)
        tx.set_bridge(event.bridge_id, members)
    call = replace(call, legs={**call.legs, uid: replace(leg, bridge=event.bridge_id, up=True)})
    if call.answered_by is None and len(members) >= 2:
        call = answer_by_bridge(tx, call, members)
    tx.put(call)


def on_bridge_leave(tx: Tx, event: ev.BridgeLeave) -> None:
    uid = event.channel.uniqueid
    linkedid = tx.linkedid_of(uid)
    call = tx.call(linkedid) if linkedid is not None else None
    unbridge(tx, event.bridge_id, uid)
    if call is None:
        return
    leg = call.legs.get(uid)
    if leg is not None and leg.bridge == event.bridge_id:
        tx.put(replace(call, legs={**call.legs, uid: replace(leg, bridge=None)}))


def on_blind_transfer(tx: Tx, event: ev.BlindTransfer) -> None:
    if event.result.lower() != "success":
        return
    party = event.transferee or event.transferer
    if party is None:
        return
    call = attach(tx, party)
    if call is not None and call.answered_by is not None:
        tx.put(replace(call, transfer_pending=True, transfer_target=event.extension))


def _leg(tx: Tx, uid: str) -> Leg | None:
    lid = tx.linkedid_of(uid)
    call = tx.call(lid) if lid is not None else None
    return call.legs.get(uid) if call is not None else None


def _local_partner(tx: Tx, leg: Leg) -> Leg | None:
    """The other half (``;1`` <-> ``;2``) of a ``Local/`` channel, if we follow it."""
    base = local_base(leg.name)
    lid = tx.linkedid_of(leg.uniqueid)
    call = tx.call(lid) if lid is not None else None
    if base is None or call is None:
        return None
    for other in call.legs.values():
        if other.uniqueid != leg.uniqueid and local_base(other.name) == base:
            return other
    return None


def _phone_behind(tx: Tx, uid: str, skip: set[str], depth: int = 0) -> Leg | None:
    """The manager's phone a channel stands for: itself, or the phone a ``Local/`` chain is bridged with."""
    leg = _leg(tx, uid)
    if leg is None or depth > 4:
        return None
    if leg.kind is LegKind.EXTENSION:
        return leg
    if leg.kind is not LegKind.LOCAL:
        return None
    partner = _local_partner(tx, leg)
    if partner is None or partner.bridge is None:
        return None
    for member in tx.bridge_members(partner.bridge):
        if member != partner.uniqueid and member not in skip:
            found = _phone_behind(tx, member, skip | {partner.uniqueid}, depth + 1)
            if found is not None:
                return found
    return None


def _transfer_taker(tx: Tx, event: ev.AttendedTransfer, transferee: str | None) -> Leg | None:
    """The phone that took the call over: the target, or whoever the transferee is now bridged with.

    Asterisk 22 sends no ``TransferTarget`` when the consultation went through a ``Local/`` channel (a
    dialplan ``atxfer``): its ``;1`` half is already in the caller's bridge and its ``;2`` half talks to the
    phone that took over; the other ``Local/`` halves and the transferer are never the answer.
    """
    skip = {
        c.uniqueid
        for c in (event.orig_transferer, event.second_transferer, event.transferee)
        if c is not None
    }
    if transferee is not None:
        skip.add(transferee)
    candidates: list[str] = []
    if event.transfer_target is not None:
        candidates.append(event.transfer_target.uniqueid)
    for bridge in (event.dest_bridge_id, event.second_bridge_id, event.orig_bridge_id):
        if bridge is not None:
            candidates.extend(tx.bridge_members(bridge))
    for uid in dict.fromkeys(candidates):
        if uid in skip:
            continue
        found = _phone_behind(tx, uid, skip)
        if found is not None:
            return found
    if event.transfer_target is not None:
        return leg_of(tx, event.transfer_target)
    return None


def on_attended_transfer(tx: Tx, event: ev.AttendedTransfer) -> None:
    if event.result.lower() != "success":
        return
    transferee_uid = (
        event.transferee.uniqueid
        if event.transferee is not None
        else _other_member(tx, event.orig_bridge_id, event.orig_transferer)
    )
    target = _transfer_taker(tx, event, transferee_uid)
    lid = tx.linkedid_of(transferee_uid) if transferee_uid is not None else None
    call = tx.call(lid) if lid is not None else None
    if call is None or target is None or target.kind is not LegKind.EXTENSION or target.extension is None:
        return
    if call.answered_by == target.extension:
        return
    tx.put(answer(tx, replace(call, transfer_pending=True), target.extension))


def _other_member(tx: Tx, bridge_id: str | None, exclude: ev.ChannelInfo | None) -> str | None:
    if bridge_id is None:
        return None
    skip = exclude.uniqueid if exclude is not None else None
    for uid in tx.bridge_members(bridge_id):
        if uid != skip:
            return uid
    return None
