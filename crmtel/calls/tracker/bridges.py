"""Bridges and transfers: who is talking to whom, and who takes a call over."""

from __future__ import annotations

from dataclasses import replace

from crmtel.ami import events as ev
from crmtel.calls.legs import LegKind
from crmtel.calls.tracker.core import answer, answer_by_bridge, attach, leg_of, unbridge
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
        tx.put(replace(call, transfer_pending=True))


def _other_member(tx: Tx, bridge_id: str | None, exclude: ev.ChannelInfo | None) -> str | None:
    if bridge_id is None:
        return None
    skip = exclude.uniqueid if exclude is not None else None
    for uid in tx.bridge_members(bridge_id):
        if uid != skip:
            return uid
    return None


def on_attended_transfer(tx: Tx, event: ev.AttendedTransfer) -> None:
    if event.result.lower() != "success":
        return
    transferee_uid = (
        event.transferee.uniqueid
        if event.transferee is not None
        else _other_member(tx, event.orig_bridge_id, event.orig_transferer)
    )
    if event.transfer_target is not None:
        target = leg_of(tx, event.transfer_target)
    else:
        target_uid = _other_member(tx, event.second_bridge_id, event.second_transferer)
        target_lid = tx.linkedid_of(target_uid) if target_uid is not None else None
        target_call = tx.call(target_lid) if target_lid is not None else None
        found = (
            target_call.legs.get(target_uid) if target_call is not None and target_uid is not None else None
        )
        if found is None:
            return
        target = found
    lid = tx.linkedid_of(transferee_uid) if transferee_uid is not None else None
    call = tx.call(lid) if lid is not None else None
    if call is None or target.kind is not LegKind.EXTENSION or target.extension is None:
        return
    if call.answered_by == target.extension:
        return
    tx.put(answer(tx, replace(call, transfer_pending=True), target.extension))
