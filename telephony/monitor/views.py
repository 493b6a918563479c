"""What a supervisor sees of a live call: plain JSON-ready dicts built from the tracker.

Pure: reads the tracker's model, never changes it. Times are Asterisk's (epoch
seconds with µs), so a screen computes running timers as `now - since` and
every client shows the same figure. Free text (the ticket summary) is decoded
here and must be rendered as text, never as markup.
"""

from __future__ import annotations

from typing import Any

from telephony.directory import role_of
from telephony.model import STATE_RING, STATE_RINGING, STATE_UP, Call, Leg, Ticket, Transfer
from telephony.ticket_context import FIELDS, decode_summary
from telephony.tracker import Tracker

View = dict[str, Any]

_STATE_NAMES = {STATE_RING: "dialing", STATE_RINGING: "ringing", STATE_UP: "up"}


def ticket_view(ticket: Ticket | None) -> View | None:
    """The ticket context as field names (ticket_context.FIELDS), summary decoded."""
    if ticket is None:
        return None
    out: View = {"id": ticket.ticket_id}
    for name, (var, _header, _limit) in FIELDS.items():
        if name == "ticket_id":
            continue
        value = ticket.context.get(var, "")
        out[name] = decode_summary(value) if name == "summary" else value
    return out


def leg_view(leg: Leg) -> View:
    role, agent = role_of(leg.channel)
    return {
        "leg_id": leg.uniqueid,
        "channel": leg.channel,
        "role": role,
        "agent": agent,
        "state": _STATE_NAMES.get(leg.state, "down"),
        "caller_num": leg.caller_num,
        "created_at": leg.created_at,
        "ringing_at": leg.ringing_at,
        "answered_at": leg.answered_at,
        "bridged_at": leg.bridged_at,
        "bridge_id": leg.bridge_id,
        "conference": leg.conference,
        "queue": leg.queue,
        "queued_at": leg.queued_at,
        "held": leg.held_at is not None,
    }


def transfer_view(transfer: Transfer) -> View:
    return {
        "transfer_id": transfer.transfer_id,
        "kind": transfer.kind,
        "status": transfer.status,
        "destination": transfer.destination,
        "initiated_at": transfer.initiated_at,
        "target_ring_at": transfer.target_ring_at,
        "target_answer_at": transfer.target_answer_at,
        "finished_at": transfer.finished_at,
        "reason": transfer.reason,
    }


def _state(legs: list[View], transfer: View | None, conference: str | None) -> str:
    """One word for the tile: what the call is doing now."""
    if conference:
        return "conference"
    if transfer is not None:
        return "transferring"
    if any(leg["queue"] for leg in legs):
        return "queued"
    agents = [leg for leg in legs if leg["role"] == "agent"]
    if any(leg["state"] in ("ringing", "dialing") for leg in agents):
        return "ringing"
    if any(leg["bridge_id"] for leg in legs):
        return "held" if any(leg["held"] for leg in legs) else "talking"
    if any(leg["state"] == "up" for leg in agents):
        return "connecting"  # answered, not yet bridged: a few milliseconds
    if any(leg["bridged_at"] is not None for leg in legs):
        return "ending"  # it has talked, and nobody is bridged any more
    return "ivr"


def call_view(tracker: Tracker, call: Call, platform: str) -> View:
    """A live call: its legs, parties, ticket, open transfer, conference and timers."""
    legs_by_uid = tracker.legs
    legs = sorted((legs_by_uid[u] for u in call.legs if u in legs_by_uid),
                  key=lambda leg: leg.created_at)
    leg_views = [leg_view(leg) for leg in legs]
    open_transfer = next(iter(call.open_transfers()), None)
    transfer = transfer_view(open_transfer) if open_transfer is not None else None
    last = call.transfers[-1] if call.transfers else None
    conference_name = next((leg.conference for leg in legs if leg.conference), None)
    conference = tracker.conferences.get(conference_name or "")
    ticket = ticket_view(tracker.tickets.get(call.ticket_id or ""))
    queue = next((leg.queue for leg in legs if leg.queue), None)
    waiting = [leg.queued_at for leg in legs if leg.queued_at is not None]
    answered = [leg.answered_at for leg in legs
                if leg.answered_at is not None and role_of(leg.channel)[0] == "agent"]
    return {
        "call_id": call.call_id,
        "platform": platform,
        # 首接: the platform that first took the call (the ticket's origin), else this one.
        "origin": (ticket or {}).get("origin") or platform,
        "state": _state(leg_views, transfer, conference_name),
        "started_at": call.started_at,
        "queue": queue,
        "waiting_since": min(waiting) if waiting else None,
        "agent_answered_at": min(answered) if answered else None,
        "agents": sorted({v["agent"] for v in leg_views if v["agent"]}),
        "legs": leg_views,
        "ticket": ticket,
        "transfer": transfer,
        "last_transfer": transfer_view(last) if last is not None and last is not open_transfer
        else None,
        "transfers": len(call.transfers),
        "conference": None if conference is None else {
            "name": conference.name,
            "started_at": conference.started_at,
            "members": sorted(conference.members),
        },
    }


def live_calls(tracker: Tracker, platform: str) -> list[View]:
    """Every live call, oldest first."""
    calls = sorted(tracker.calls.values(), key=lambda call: call.started_at)
    return [call_view(tracker, call, platform) for call in calls]
