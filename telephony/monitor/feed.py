"""The monitor feed's content: which messages the live model's changes make. Pure: no I/O.

`DeltaBuilder` is told which domain facts and queue-member events arrived; when
asked to `build()` it turns every call, queue and agent they touched into one
message each (a burst of facts about one call becomes one message), plus a
screen-pop when a call starts ringing an agent. `FeedLog` numbers the messages
(`seq`, one counter for the whole feed) and keeps the newest in a ring for
clients that resume. `Filter` says which messages a client sees.

Message schema: docs/monitor.md.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from telephony import domain_events as de
from telephony.directory import role_of
from telephony.domain_events import DomainEvent
from telephony.model import STATE_UP
from telephony.monitor.queues import QueueBoard
from telephony.monitor.views import View, call_view
from telephony.tracker import Tracker

SCHEMA_VERSION = 1
Message = dict[str, Any]


@dataclass(frozen=True)
class Filter:
    """A client's view of the feed; empty fields match everything.

    - platform: calls on this platform or first taken by it (origin, 首接);
    - queue: calls that joined this queue, that queue's tile, its agents;
    - agent: calls the agent is (or just was) on, its own tile and screen-pops;
      queue tiles carry no personal data and always pass;
    - ticket: that ticket's calls and screen-pops only.
    """

    platform: str = ""
    queue: str = ""
    agent: str = ""
    ticket: str = ""

    def matches(self, msg: Message) -> bool:
        kind = msg["type"]
        if kind == "reset":
            return True
        if kind == "queue":
            return not self.ticket and (not self.queue or msg["queue"]["name"] == self.queue)
        if kind == "agent":
            tile = msg["agent"]
            return (not self.ticket and (not self.agent or tile["agent"] == self.agent)
                    and (not self.queue or self.queue in tile["queues"]))
        # call and screen_pop messages carry their match keys at the top level
        return ((not self.platform or self.platform in msg["platforms"])
                and (not self.queue or msg["queue"] == self.queue)
                and (not self.agent or self.agent in msg["agents"])
                and (not self.ticket or msg["ticket_id"] == self.ticket))

    def calls(self, views: Iterable[View]) -> list[View]:
        """The read API's filter over call views (the same rules as for messages)."""
        return [v for v in views if self.matches(_call_keys(v, {"type": "call"}))]


def _call_keys(view: View, msg: Message, former_agents: Iterable[str] = ()) -> Message:
    msg["call_id"] = view["call_id"]
    msg["platforms"] = sorted({view["platform"], view["origin"]})
    msg["queue"] = view["home_queue"]
    msg["agents"] = sorted(set(view["agents"]) | set(former_agents))
    msg["ticket_id"] = (view["ticket"] or {}).get("id")
    return msg


def encode(msg: Message) -> str:
    return orjson.dumps(msg).decode()


class LastKeys(NamedTuple):
    agents: tuple[str, ...]
    platforms: tuple[str, ...]
    ticket_id: str | None


@dataclass
class FeedLog:
    """Numbers messages and remembers the newest `ring_size` (seq, message, text)."""

    ring_size: int = 4096
    seq: int = 0
    ring: deque[tuple[int, Message, str]] = field(default_factory=deque)

    def append(self, msg: Message) -> tuple[int, str]:
        self.seq += 1
        msg["seq"] = self.seq
        text = encode(msg)
        self.ring.append((self.seq, msg, text))
        if len(self.ring) > self.ring_size:
            self.ring.popleft()
        return self.seq, text

    def after(self, seq: int) -> list[tuple[int, Message, str]] | None:
        """Every message after `seq`, or None when the ring no longer holds them all."""
        if seq >= self.seq:
            return [] if seq == self.seq else None
        if not self.ring or self.ring[0][0] > seq + 1:
            return None
        start = seq + 1 - self.ring[0][0]
        return [self.ring[i] for i in range(start, len(self.ring))]


@dataclass
class DeltaBuilder:
    tracker: Tracker
    queues: QueueBoard
    platform: str
    _dirty_calls: dict[str, list[str]] = field(default_factory=dict)  # call -> fact kinds
    _ended: dict[str, float] = field(default_factory=dict)  # call -> ts
    _dirty_queues: set[str] = field(default_factory=set)
    _dirty_agents: set[str] = field(default_factory=set)
    _pops: list[tuple[str, str]] = field(default_factory=list)  # (agent, call) to pop
    _ts: float = 0.0
    _rx: float | None = None  # when the oldest unbuilt change was read (service clock)
    # The match keys of each live call's last message: its remove carries them too,
    # so every client that saw the call (filtered by agent, platform or ticket) sees it go,
    # and an agent who left is named once in `former_agents`.
    _last_keys: dict[str, LastKeys] = field(default_factory=dict)
    # The queue each call last joined: a call keeps its queue after an agent answers.
    home_queue: dict[str, str] = field(default_factory=dict)
    _popped: set[str] = field(default_factory=set)  # agent legs already popped

    @property
    def pending(self) -> bool:
        return bool(self._dirty_calls or self._ended or self._dirty_queues
                    or self._dirty_agents or self._pops)

    def note_facts(self, facts: Iterable[DomainEvent], rx: float | None = None) -> None:
        for fact in facts:
            self._ts = fact.ts
            call_id = fact.call_id
            kind = fact.kind
            if kind == de.QUEUE_JOINED and call_id:
                self.home_queue[call_id] = str(fact.data.get("queue") or "")
            if kind == de.CALL_MERGED and call_id:
                # The call that disappeared into this one ends on the feed.
                merged = str(fact.data.get("merged") or "")
                if merged and merged != call_id:
                    self._ended[merged] = fact.ts
                    self._dirty_calls.pop(merged, None)
            if not call_id:
                continue
            if kind == de.CALL_ENDED:
                self._ended[call_id] = fact.ts
                self._dirty_calls.pop(call_id, None)
                continue
            self._dirty_calls.setdefault(call_id, []).append(kind)
            if kind == de.LEG_RINGING and fact.leg and fact.leg not in self._popped:
                leg = self.tracker.legs.get(fact.leg)
                if leg is not None:
                    role, agent = role_of(leg.channel)
                    if role == "agent" and agent:
                        self._popped.add(fact.leg)
                        self._pops.append((agent, call_id))
            elif kind == de.LEG_LEFT and fact.leg:
                self._popped.discard(fact.leg)
            if kind.startswith("queue."):
                self._dirty_queues.add(self.home_queue.get(call_id, ""))
        if rx is not None and self._rx is None and self.pending:
            self._rx = rx

    def note_queues(self, names: Iterable[str]) -> None:
        self._dirty_queues.update(names)

    def note_agents(self, agents: Iterable[str], rx: float | None = None) -> None:
        self._dirty_agents.update(agents)
        if rx is not None and self._rx is None and self._dirty_agents:
            self._rx = rx

    def build(self, now: float) -> list[Message]:
        """One message per touched call, screen-pop, queue and agent, in that order."""
        out: list[Message] = []
        rx, self._rx = self._rx, None
        stamp = {"v": SCHEMA_VERSION, "ts": self._ts, "rx": rx}
        dirty_calls, self._dirty_calls = self._dirty_calls, {}
        for call_id, kinds in dirty_calls.items():
            call = self.tracker.calls.get(call_id)
            if call is None:
                continue  # gone already; its call.ended follows
            out.append(self._call_message(call_id, self.view(call), kinds, stamp))
        for call_id, ts in self._ended.items():
            last = self._last_keys.pop(call_id, None) or LastKeys((), (self.platform,), None)
            queue = self.home_queue.pop(call_id, "")
            out.append({**stamp, "ts": ts, "type": "call", "op": "remove", "call_id": call_id,
                        "facts": [de.CALL_ENDED], "platforms": list(last.platforms),
                        "queue": queue, "agents": list(last.agents),
                        "ticket_id": last.ticket_id, "former_agents": list(last.agents)})
            self._dirty_agents.update(last.agents)
        self._ended = {}
        for agent, call_id in self._pops:
            call = self.tracker.calls.get(call_id)
            if call is None:
                continue
            view = self.view(call)
            msg = _call_keys(view, {**stamp, "type": "screen_pop", "agent": agent,
                                    "ticket": view["ticket"], "call": view})
            msg["agents"] = [agent]
            out.append(msg)
        self._pops = []
        for name in sorted(n for n in self._dirty_queues if n):
            out.append({**stamp, "type": "queue", "queue": self.queues.queue_view(
                name, self.tracker, now)})
        self._dirty_queues = set()
        for agent in sorted(self._dirty_agents):
            out.append({**stamp, "type": "agent", "agent": self.agent_view(agent)})
        self._dirty_agents = set()
        return out

    def _call_message(self, call_id: str, view: View, kinds: list[str],
                      stamp: Message) -> Message:
        now_agents = tuple(view["agents"])
        last = self._last_keys.get(call_id)
        before = last.agents if last is not None else ()
        former = [a for a in before if a not in now_agents]
        if now_agents != before:
            self._dirty_agents.update(set(now_agents) ^ set(before))
        # Fact kinds repeat in a burst (leg.bridged twice): keep the first of each.
        facts = list(dict.fromkeys(kinds))
        msg = _call_keys(view, {**stamp, "type": "call", "op": "upsert", "facts": facts,
                                "call": view, "former_agents": former}, former)
        self._last_keys[call_id] = LastKeys(now_agents, tuple(msg["platforms"]),
                                            msg["ticket_id"])
        return msg

    # -- views shared with the read API and snapshots ------------------------------
    def view(self, call: Any) -> View:
        view = call_view(self.tracker, call, self.platform)
        view["home_queue"] = view["queue"] or self.home_queue.get(call.call_id) or None
        return view

    def calls(self) -> list[View]:
        calls = sorted(self.tracker.calls.values(), key=lambda c: c.started_at)
        return [self.view(call) for call in calls]

    def agent_for_call(self) -> dict[str, tuple[str, bool]]:
        """agent id -> (the live call its phone is on, whether the phone is answered)."""
        out: dict[str, tuple[str, bool]] = {}
        for leg in self.tracker.legs.values():
            if leg.hangup_at is None:
                role, agent = role_of(leg.channel)
                if role == "agent" and agent:
                    answered = leg.state == STATE_UP or out.get(agent, ("", False))[1]
                    out[agent] = (leg.call_id, answered)
        return out

    def agent_view(self, agent: str,
                   on_call: dict[str, tuple[str, bool]] | None = None) -> View:
        calls = on_call if on_call is not None else self.agent_for_call()
        call_id, answered = calls.get(agent, (None, False))
        return self.queues.agent_view(agent, call_id, ringing=call_id is not None
                                      and not answered)

    def agents(self) -> list[View]:
        on_call = self.agent_for_call()
        ids = self.queues.agent_ids() | set(on_call)
        return [self.agent_view(agent, on_call) for agent in sorted(ids)]

    def queue_views(self, now: float) -> list[View]:
        return [self.queues.queue_view(name, self.tracker, now)
                for name in self.queues.queue_names(self.tracker)]

    def snapshot(self, seq: int, now: float, flt: Filter, reason: str) -> Message:
        """Everything a client with `flt` sees, as of message `seq`."""
        return {
            "v": SCHEMA_VERSION, "type": "snapshot", "seq": seq, "reason": reason,
            "platform": self.platform, "now": now, "ts": now, "rx": None,
            "calls": flt.calls(self.calls()),
            "queues": [q for q in self.queue_views(now)
                       if flt.matches({"type": "queue", "queue": q})],
            "agents": [a for a in self.agents() if flt.matches({"type": "agent", "agent": a})],
        }

