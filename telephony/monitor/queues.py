"""Queues and agents as a supervisor sees them. Pure: no I/O.

Two inputs:
- AMI queue-member events (QueueMemberAdded / Removed / Status / Pause, and the
  QueueMember / QueueParams items of a QueueStatus listing, read at every AMI
  login) say who is logged in to which queue and what their phone is doing;
- the tracker's domain facts (queue.joined / answered / abandoned) count today's
  offered, answered, answered-within-the-service-level and abandoned calls.

Waiting callers and the longest wait come from the tracker's live legs (a leg
with a queue set has joined and not yet left), read when a view is built.

"Today" is the platform's calendar day in its time zone (Asia/Shanghai by
default). The day counters are the service's own since it started or since
midnight, whichever is later (`counting_since` says which); the archive, not
this board, is the record of a whole day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from telephony import domain_events as de
from telephony.domain_events import DomainEvent
from telephony.tracker import Tracker

MEMBER_EVENTS = frozenset({"QueueMemberAdded", "QueueMemberRemoved", "QueueMemberStatus",
                           "QueueMemberPause", "QueueMember", "QueueParams"})

# AMI QueueMember `Status` (Asterisk device states) -> what a wallboard says.
_STATUS = {"0": "unknown", "1": "free", "2": "busy", "3": "busy", "4": "invalid",
           "5": "unavailable", "6": "ringing", "7": "ringing", "8": "on_hold"}


@dataclass(slots=True)
class Member:
    queue: str
    interface: str  # PJSIP/agent12345-1
    name: str
    status: str = "unknown"
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False
    calls_taken: int = 0
    last_call: float = 0.0

    @property
    def agent(self) -> str:
        """The agent id: the endpoint behind a PJSIP interface, else the member name."""
        tech, _, endpoint = self.interface.partition("/")
        return endpoint if tech == "PJSIP" and endpoint else self.name


@dataclass(slots=True)
class DayCounts:
    day: str
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    wait_total_s: float = 0.0


@dataclass
class QueueBoard:
    service_level_s: float = 15.0
    timezone: str = "Asia/Shanghai"
    started_at: float = 0.0  # the service's start: the day counters count from here
    members: dict[tuple[str, str], Member] = field(default_factory=dict)  # (queue, interface)
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    days: dict[str, DayCounts] = field(default_factory=dict)  # queue -> today's counts
    _joined: dict[str, tuple[str, float]] = field(default_factory=dict)  # leg -> (queue, ts)
    anomalies: int = 0

    def __post_init__(self) -> None:
        try:
            self._tz: dt.tzinfo = ZoneInfo(self.timezone)
        except (KeyError, ValueError, OSError):  # no tz database: China has no DST
            self._tz = dt.timezone(dt.timedelta(hours=8))

    # -- inputs ---------------------------------------------------------------
    def on_ami_event(self, event: Mapping[str, Any]) -> set[str]:
        """A queue-member event or listing item; returns the agents whose tile changed."""
        name = event.get("Event")
        try:
            if name == "QueueParams":
                self.params[str(event["Queue"])] = {k: str(v) for k, v in event.items()}
                return set()
            queue, interface = str(event["Queue"]), str(event["Interface"])
        except KeyError:
            self.anomalies += 1
            return set()
        key = (queue, interface)
        if name == "QueueMemberRemoved":
            gone = self.members.pop(key, None)
            return {gone.agent} if gone is not None else set()
        member = self.members.get(key)
        if member is None:
            member = self.members[key] = Member(queue, interface,
                                                str(event.get("MemberName") or interface))
        status = event.get("Status")
        if status is not None:
            member.status = _STATUS.get(str(status), "unknown")
        if "Paused" in event:
            member.paused = str(event["Paused"]) == "1"
            member.paused_reason = str(event.get("PausedReason", ""))
        if "InCall" in event:
            member.in_call = str(event["InCall"]) == "1"
        member.calls_taken = _int(event.get("CallsTaken"), member.calls_taken)
        member.last_call = float(_int(event.get("LastCall"), int(member.last_call)))
        return {member.agent}

    def on_facts(self, facts: Iterable[DomainEvent]) -> set[str]:
        """Queue facts; returns the queues whose day counts changed."""
        changed: set[str] = set()
        for fact in facts:
            kind = fact.kind
            if kind == de.QUEUE_JOINED:
                queue = str(fact.data.get("queue") or "")
                if fact.leg:
                    self._joined[fact.leg] = (queue, fact.ts)
                self._today(queue, fact.ts).offered += 1
                changed.add(queue)
            elif kind == de.QUEUE_ANSWERED:
                queue, joined = self._joined.pop(fact.leg or "", ("", fact.ts))
                queue = str(fact.data.get("queue") or queue)
                counts = self._today(queue, fact.ts)
                wait = max(fact.ts - joined, 0.0)
                counts.answered += 1
                counts.wait_total_s += wait
                if wait <= self.service_level_s:
                    counts.answered_within_sl += 1
                changed.add(queue)
            elif kind == de.QUEUE_ABANDONED:
                queue, _ = self._joined.pop(fact.leg or "", ("", fact.ts))
                queue = str(fact.data.get("queue") or queue)
                self._today(queue, fact.ts).abandoned += 1
                changed.add(queue)
            elif kind == de.LEG_LEFT and fact.leg in self._joined:
                del self._joined[fact.leg]  # left without an answer or abandon event
        return changed

    def _day_of(self, ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, self._tz).date().isoformat()

    def _today(self, queue: str, ts: float) -> DayCounts:
        day = self._day_of(ts)
        counts = self.days.get(queue)
        if counts is None or counts.day != day:
            counts = self.days[queue] = DayCounts(day)
        return counts

    # -- views ----------------------------------------------------------------
    def queue_names(self, tracker: Tracker) -> list[str]:
        names = {q for q, _ in self.members} | set(self.params) | set(self.days)
        names |= {leg.queue for leg in tracker.legs.values() if leg.queue}
        return sorted(n for n in names if n)

    def queue_view(self, name: str, tracker: Tracker, now: float) -> dict[str, Any]:
        waiting = sorted(
            ({"call_id": leg.call_id, "leg_id": leg.uniqueid, "caller_num": leg.caller_num,
              "since": leg.queued_at}
             for leg in tracker.legs.values() if leg.queue == name and leg.hangup_at is None),
            key=lambda w: w["since"] or now)
        members = [m for m in self.members.values() if m.queue == name]
        counts = self.days.get(name)
        if counts is None or counts.day != self._day_of(now):
            counts = DayCounts(self._day_of(now))
        midnight = dt.datetime.fromisoformat(counts.day).replace(tzinfo=self._tz).timestamp()
        return {
            "name": name,
            "waiting": len(waiting),
            "oldest_waiting_since": waiting[0]["since"] if waiting else None,
            "waiting_calls": waiting,
            "agents": {
                "logged_in": len(members),
                "free": sum(1 for m in members if m.status == "free" and not m.paused),
                "busy": sum(1 for m in members if m.status in ("busy", "on_hold") or m.in_call),
                "ringing": sum(1 for m in members if m.status == "ringing"),
                "paused": sum(1 for m in members if m.paused),
                "unavailable": sum(1 for m in members
                                   if m.status in ("unavailable", "invalid")),
            },
            "service_level_s": self.service_level_s,
            "today": {
                "day": counts.day,
                "counting_since": max(midnight, self.started_at),
                "offered": counts.offered,
                "answered": counts.answered,
                "answered_within_sl": counts.answered_within_sl,
                "abandoned": counts.abandoned,
                # Answered within the level over answered plus abandoned (GB/T 33358's 15 s).
                "service_level": _ratio(counts.answered_within_sl,
                                        counts.answered + counts.abandoned),
                "mean_wait_s": _ratio(counts.wait_total_s, counts.answered),
            },
        }

    def agent_ids(self) -> set[str]:
        return {m.agent for m in self.members.values()}

    def agent_view(self, agent: str, call_id: str | None,
                   ringing: bool = False) -> dict[str, Any]:
        """One agent across its queues; `call_id` is the live call its phone is on, if
        any, and `ringing` says the phone rings and has not answered yet."""
        mine = [m for m in self.members.values() if m.agent == agent]
        statuses = {m.status for m in mine}
        if ringing or (call_id is None and "ringing" in statuses):
            status = "ringing"
        elif call_id is not None or "busy" in statuses or any(m.in_call for m in mine):
            status = "busy"
        elif mine and all(m.paused for m in mine):
            status = "paused"
        elif "free" in statuses:
            status = "free"
        elif not mine:
            status = "logged_out"
        else:
            status = sorted(statuses)[0]
        return {
            "agent": agent,
            "status": status,
            "logged_in": bool(mine),
            "queues": sorted(m.queue for m in mine),
            "paused": bool(mine) and all(m.paused for m in mine),
            "paused_reason": next((m.paused_reason for m in mine if m.paused_reason), ""),
            "calls_taken": sum(m.calls_taken for m in mine),
            "last_call": max((m.last_call for m in mine), default=0.0) or None,
            "call_id": call_id,
        }


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None
