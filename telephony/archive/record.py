"""One ended ticket's archive rows, built from its timeline. Pure: no I/O.

The input is the ticket's Redis timeline as read back (`XRANGE`): entries of
(step id, {"kind", "ts", "call_id", "leg", ...the fact's data as strings}), as
written by telephony.fact_writes and the operation and IVR steps. The output is
the rows of every archive table (telephony/archive/migrations/001_archive.sql),
so the archive holds exactly what the timeline says, and building twice from
the same timeline gives the same rows (the writer may retry).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telephony import domain_events as de
from telephony.directory import role_of
from telephony.ticket_context import FIELDS, decode_summary

Entry = tuple[str, Mapping[str, str]]
Row = dict[str, Any]

# How a ticket ended on this platform, checked in this order (the first that fits):
OUTCOMES = (
    "three_party",  # a conference with the other platform or a desk (三方通话)
    "transferred",  # moved to another platform or desk (一键转接, warm transfer)
    "answered",  # an agent here took it
    "abandoned",  # the caller hung up while queued
    "self_service",  # ended in the IVR: callback request, information, never queued
    "unanswered",  # queued, left without an answer or an abandon event
)
CONTEXT_FIELDS = tuple(name for name in FIELDS if name != "ticket_id")
# Fields every step has; the rest of an entry is the fact's own data.
_STEP_FIELDS = ("kind", "ts", "call_id", "leg")
_PLATFORM = re.compile(r"(?<!\d)(12345|110|119|120|122)(?!\d)")


def destination_platform(destination: str) -> str:
    """The platform or desk a transfer went to, from its dial string or extension."""
    found = _PLATFORM.search(destination)
    return found.group(1) if found else ""


def _ts(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


@dataclass
class ArchiveRecord:
    ticket: Row
    calls: list[Row] = field(default_factory=list)
    legs: list[Row] = field(default_factory=list)
    transfers: list[Row] = field(default_factory=list)
    conferences: list[Row] = field(default_factory=list)
    steps: list[Row] = field(default_factory=list)


def build_record(platform: str, ticket_id: str, entries: Iterable[Entry]) -> ArchiveRecord:
    steps = [s for s in (_step(step_id, fields) for step_id, fields in entries)
             if s is not None]
    steps.sort(key=lambda s: (s["at"], s["step_id"]))
    if not steps:
        raise ValueError(f"ticket {ticket_id} has no timeline steps")
    legs = _legs(steps)
    transfers = _transfers(platform, steps)
    conferences = _conferences(steps)
    ticket = _ticket(platform, ticket_id, steps, legs, transfers, conferences)
    base = {"platform": platform, "ticket_id": ticket_id}
    return ArchiveRecord(
        ticket=ticket,
        calls=[{**base, **c} for c in _calls(steps)],
        legs=[{**base, **leg} for leg in legs.values()],
        transfers=[{**base, **t} for t in transfers],
        conferences=[{**base, **c} for c in conferences.values()],
        steps=[{**base, **s} for s in steps],
    )


def _step(step_id: str, fields: Mapping[str, str]) -> Row | None:
    at = _ts(fields.get("ts"))
    kind = fields.get("kind", "")
    if at is None or not kind:
        return None  # not a step this project wrote; kept out rather than guessed
    data = {k: v for k, v in fields.items() if k not in _STEP_FIELDS}
    return {"step_id": step_id, "at": at, "kind": kind, "call_id": fields.get("call_id", ""),
            "leg": fields.get("leg", ""), "data": data}


def _legs(steps: list[Row]) -> dict[str, Row]:
    legs: dict[str, Row] = {}
    for s in steps:
        kind, uid = s["kind"], s["leg"]
        if not uid or not (kind.startswith("leg.") or kind == de.TICKET_CONTEXT):
            continue
        leg = legs.get(uid)
        if leg is None:
            leg = legs[uid] = {"leg_id": uid, "call_id": s["call_id"], "channel": "",
                               "role": "", "agent": "", "created_at": None, "ring_at": None,
                               "answer_at": None, "bridge_at": None, "left_at": None,
                               "cause": ""}
        if kind == de.LEG_CREATED:
            leg["created_at"] = s["at"]
        if kind in (de.LEG_CREATED, de.TICKET_CONTEXT) and s["data"].get("channel"):
            # A leg created before its ticket was known is named when it joins it.
            leg["channel"] = s["data"]["channel"]
            role, agent = role_of(leg["channel"])
            leg["role"], leg["agent"] = role, agent or ""
        elif kind == de.LEG_RINGING and leg["ring_at"] is None:
            leg["ring_at"] = s["at"]
        elif kind == de.LEG_ANSWERED and leg["answer_at"] is None:
            leg["answer_at"] = s["at"]
        elif kind == de.LEG_BRIDGED and leg["bridge_at"] is None:
            leg["bridge_at"] = s["at"]
        elif kind == de.LEG_LEFT:
            leg["left_at"] = s["at"]
            leg["cause"] = s["data"].get("cause_txt") or s["data"].get("cause", "")
    return legs


def _transfers(platform: str, steps: list[Row]) -> list[Row]:
    """One row per transfer.started, updated by the steps of the same tracker transfer."""
    by_key: dict[tuple[str, str], Row] = {}
    out: list[Row] = []
    for s in steps:
        kind = s["kind"]
        if not kind.startswith("transfer."):
            continue
        data = s["data"]
        key = (s["call_id"], data.get("transfer", ""))
        row = by_key.get(key)
        if kind == de.TRANSFER_STARTED or row is None:
            row = by_key[key] = {"transfer_id": s["step_id"], "call_id": s["call_id"],
                                 "kind": data.get("detail_kind", ""), "status": "started",
                                 "destination": "", "direction": "",
                                 "initiated_at": _ts(data.get("initiated_at")) or s["at"],
                                 "target_ring_at": None, "target_answer_at": None,
                                 "finished_at": None, "caller_drop_at": None,
                                 "returned_at": None, "reason": ""}
            out.append(row)
        for name in ("target_ring_at", "target_answer_at", "finished_at", "caller_drop_at",
                     "returned_at"):
            if data.get(name):
                row[name] = _ts(data[name])
        if data.get("destination"):
            row["destination"] = data["destination"]
            to = destination_platform(data["destination"])
            row["direction"] = f"{platform}->{to}" if to else ""
        if data.get("reason"):
            row["reason"] = data["reason"]
        if kind in (de.TRANSFER_COMPLETED, de.TRANSFER_FAILED, de.TRANSFER_CANCELLED):
            row["status"] = kind.split(".", 1)[1]
    return out


def _conferences(steps: list[Row]) -> dict[str, Row]:
    confs: dict[str, Row] = {}
    joined: dict[str, set[str]] = {}
    for s in steps:
        if not s["kind"].startswith("conference."):
            continue
        name = s["data"].get("conference", "")
        conf = confs.setdefault(name, {"name": name, "started_at": None, "ended_at": None,
                                       "parties": 0})
        if s["kind"] == de.CONFERENCE_STARTED:
            conf["started_at"] = s["at"]
        elif s["kind"] == de.CONFERENCE_JOINED:
            joined.setdefault(name, set()).add(s["leg"])
            conf["parties"] = len(joined[name])
            if conf["started_at"] is None:
                conf["started_at"] = s["at"]
        elif s["kind"] == de.CONFERENCE_ENDED:
            conf["ended_at"] = s["at"]
    return confs


def _calls(steps: list[Row]) -> list[Row]:
    calls: dict[str, Row] = {}
    for s in steps:
        call_id = s["call_id"]
        if not call_id:
            continue
        call = calls.setdefault(call_id, {"call_id": call_id, "started_at": s["at"],
                                          "ended_at": None, "duration_s": None})
        if s["kind"] == de.CALL_ENDED:
            call["ended_at"] = s["at"]
            call["duration_s"] = _ts(s["data"].get("duration"))
    return list(calls.values())


def _ticket(platform: str, ticket_id: str, steps: list[Row], legs: Mapping[str, Row],
            transfers: list[Row], conferences: Mapping[str, Row]) -> Row:
    context = dict.fromkeys(CONTEXT_FIELDS, "")
    firsts: dict[str, float] = {}
    negotiation, police_first, queue = "", False, ""
    for s in steps:
        kind, data = s["kind"], s["data"]
        if kind == de.TICKET_CONTEXT:
            context.update({k: v for k, v in data.items() if k in context and v})
        elif kind.startswith("ivr.") and data.get("callback") and not context["callback"]:
            context["callback"] = data["callback"]
        elif kind.startswith("op.conference.") and data.get("negotiation"):
            negotiation = data["negotiation"]
            police_first = data.get("police_dispatch_first") == "1"
        if kind == de.QUEUE_JOINED and not queue:
            queue = data.get("queue", "")
        firsts.setdefault(kind, s["at"])
    context["summary"] = decode_summary(context["summary"])
    answered_at = firsts.get(de.QUEUE_ANSWERED)
    agents = sorted({leg["agent"] for leg in legs.values() if leg["agent"]})
    if any(c["parties"] >= 3 for c in conferences.values()) or negotiation:
        outcome = "three_party"
    elif any(t["status"] == "completed" and t["kind"] in ("blind", "attended")
             for t in transfers):
        outcome = "transferred"
    elif answered_at is not None or any(leg["answer_at"] for leg in legs.values()
                                        if leg["role"] == "agent"):
        outcome = "answered"
    elif de.QUEUE_ABANDONED in firsts:
        outcome = "abandoned"
    elif de.QUEUE_JOINED not in firsts:
        outcome = "self_service"
    else:
        outcome = "unanswered"
    return {
        "platform": platform, "ticket_id": ticket_id, **context,
        "origin": context["origin"] or platform,
        "queue": queue, "agents": agents,
        "opened_at": steps[0]["at"], "closed_at": steps[-1]["at"],
        "queued_at": firsts.get(de.QUEUE_JOINED), "answered_at": answered_at,
        "abandoned_at": firsts.get(de.QUEUE_ABANDONED) if answered_at is None else None,
        "outcome": outcome, "negotiation": negotiation, "police_first": police_first,
        "transfers": len(transfers), "steps": len(steps),
    }
