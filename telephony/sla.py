"""SLA timeline: when each step of a call happened, from the tracker's domain events.

Pure. `SlaRecorder.apply()` folds domain events into one record per call:
- per leg: created, ring, answer, first bridge, last unbridge, leave (hangup);
- per transfer: initiation, target ring, target answer, caller drop, outcome;
- per conference: start, each join and leave, end;
- queue waits and key presses.

`timeline()` is the read API: a JSON-able view of one call or of every call of
a ticket, with a flat, time-ordered list of steps and a few derived figures
(transfer setup seconds, answer wait). Finished calls are kept in a bounded
LRU; the Redis store is the durable copy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from telephony import domain_events as de
from telephony.domain_events import DomainEvent

MAX_FINISHED_CALLS = 10_000

_TRANSFER_TIMES = ("initiated_at", "target_ring_at", "target_answer_at", "caller_drop_at",
                   "finished_at", "returned_at")


def _new_call(call_id: str, ts: float) -> dict[str, Any]:
    return {"call_id": call_id, "ticket_id": None, "started_at": ts, "ended_at": None,
            "legs": {}, "transfers": {}, "conferences": {}, "queue": [], "keys": []}


def _new_conference(name: str, ts: float | None) -> dict[str, Any]:
    return {"name": name, "started_at": ts, "ended_at": None, "joins": [], "leaves": []}


class SlaRecorder:
    def __init__(self, max_finished: int = MAX_FINISHED_CALLS) -> None:
        self.live: dict[str, dict[str, Any]] = {}
        self.finished: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.by_ticket: dict[str, list[str]] = {}
        self._orphan_conferences: dict[str, dict[str, Any]] = {}
        self._max_finished = max_finished
        self._handlers: dict[str, Callable[[dict[str, Any], DomainEvent], None]] = {
            de.LEG_CREATED: self._leg_created,
            de.LEG_RINGING: self._leg_time("ring_at"),
            de.LEG_ANSWERED: self._leg_time("answer_at"),
            de.LEG_BRIDGED: self._leg_time("bridge_at"),
            de.LEG_UNBRIDGED: self._leg_unbridged,
            de.LEG_LEFT: self._leg_left,
            de.TRANSFER_STARTED: self._transfer_event,
            de.TRANSFER_COMPLETED: self._transfer_event,
            de.TRANSFER_FAILED: self._transfer_event,
            de.TRANSFER_CANCELLED: self._transfer_event,
            de.TRANSFER_RETURNED: self._transfer_event,
            de.CONFERENCE_STARTED: self._conference_event,
            de.CONFERENCE_JOINED: self._conference_event,
            de.CONFERENCE_LEFT: self._conference_event,
            de.CONFERENCE_ENDED: self._conference_event,
            de.QUEUE_JOINED: self._queue_event,
            de.QUEUE_ANSWERED: self._queue_event,
            de.QUEUE_ABANDONED: self._queue_event,
            de.KEY_PRESSED: self._key_pressed,
            de.CALL_ENDED: self._call_ended,
        }

    def apply_all(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, ev: DomainEvent) -> None:
        if ev.call_id is None:
            if ev.kind == de.CONFERENCE_STARTED:  # no member yet: wait for the first join
                name = ev.data["conference"]
                self._orphan_conferences[name] = _new_conference(name, ev.ts)
            return
        if ev.kind == de.CALL_MERGED:
            self._merge(ev.call_id, ev.data["merged"])
        call = self.live.get(ev.call_id)
        if call is None:
            call = self.live[ev.call_id] = _new_call(ev.call_id, ev.ts)
        if ev.ticket_id and call["ticket_id"] is None:
            call["ticket_id"] = ev.ticket_id
            self.by_ticket.setdefault(ev.ticket_id, []).append(ev.call_id)
        handler = self._handlers.get(ev.kind)
        if handler is not None:
            handler(call, ev)

    def _leg(self, call: dict[str, Any], ev: DomainEvent) -> dict[str, Any]:
        leg = call["legs"].get(ev.leg)
        if leg is None:
            leg = call["legs"][ev.leg] = {"created_at": None}
        return leg

    def _leg_created(self, call: dict[str, Any], ev: DomainEvent) -> None:
        leg = self._leg(call, ev)
        leg["created_at"] = ev.ts
        leg["channel"] = ev.data.get("channel", "")

    def _leg_time(self, field: str) -> Callable[[dict[str, Any], DomainEvent], None]:
        def record(call: dict[str, Any], ev: DomainEvent) -> None:
            self._leg(call, ev).setdefault(field, ev.ts)  # the first time counts

        return record

    def _leg_unbridged(self, call: dict[str, Any], ev: DomainEvent) -> None:
        self._leg(call, ev)["unbridge_at"] = ev.ts  # the last time counts

    def _leg_left(self, call: dict[str, Any], ev: DomainEvent) -> None:
        leg = self._leg(call, ev)
        leg["leave_at"] = ev.ts
        leg["cause"] = ev.data.get("cause", "")

    def _transfer_event(self, call: dict[str, Any], ev: DomainEvent) -> None:
        record = call["transfers"].setdefault(ev.data["transfer"], {})
        record.update({k: v for k, v in ev.data.items() if k != "transfer"})
        if ev.kind != de.TRANSFER_RETURNED:  # a return follows a failure: the outcome stays
            record["outcome"] = ev.kind.split(".", 1)[1]

    def _key_pressed(self, call: dict[str, Any], ev: DomainEvent) -> None:
        call["keys"].append({"at": ev.ts, "leg": ev.leg, "key": ev.data.get("key", "")})

    def _call_ended(self, call: dict[str, Any], ev: DomainEvent) -> None:
        self._finish(call, ev.ts)

    def _conference_event(self, call: dict[str, Any], ev: DomainEvent) -> None:
        name = ev.data["conference"]
        conf = call["conferences"].get(name)
        if conf is None:
            conf = self._orphan_conferences.pop(name, None) or _new_conference(name, None)
            call["conferences"][name] = conf
        if ev.kind == de.CONFERENCE_STARTED:
            conf["started_at"] = ev.ts
        elif ev.kind == de.CONFERENCE_JOINED:
            conf["joins"].append({"leg": ev.leg, "at": ev.ts})
        elif ev.kind == de.CONFERENCE_LEFT:
            conf["leaves"].append({"leg": ev.leg, "at": ev.ts})
        elif ev.kind == de.CONFERENCE_ENDED:
            conf["ended_at"] = ev.ts

    def _queue_event(self, call: dict[str, Any], ev: DomainEvent) -> None:
        queue = call["queue"]
        if ev.kind == de.QUEUE_JOINED:
            queue.append({"queue": ev.data.get("queue", ""), "leg": ev.leg, "joined_at": ev.ts})
            return
        for wait in reversed(queue):
            if wait["leg"] == ev.leg:
                key = "answered_at" if ev.kind == de.QUEUE_ANSWERED else "abandoned_at"
                wait[key] = ev.ts
                wait["wait_seconds"] = round(ev.ts - wait["joined_at"], 6)
                return

    def _merge(self, keep_id: str, gone_id: str) -> None:
        gone = self.live.pop(gone_id, None)
        if gone is None:
            return
        keep = self.live.setdefault(keep_id, _new_call(keep_id, gone["started_at"]))
        keep["started_at"] = min(keep["started_at"], gone["started_at"])
        for part in ("legs", "transfers", "conferences"):
            keep[part].update(gone[part])
        keep["queue"].extend(gone["queue"])
        keep["keys"].extend(gone["keys"])
        if gone["ticket_id"]:
            ids = self.by_ticket.get(gone["ticket_id"], [])
            if gone_id in ids:
                ids.remove(gone_id)
            if keep["ticket_id"] is None:
                keep["ticket_id"] = gone["ticket_id"]
            if keep_id not in ids:
                ids.append(keep_id)
                self.by_ticket[gone["ticket_id"]] = ids

    def _finish(self, call: dict[str, Any], ts: float) -> None:
        call["ended_at"] = ts
        self.live.pop(call["call_id"], None)
        self.finished[call["call_id"]] = call
        while len(self.finished) > self._max_finished:
            _, old = self.finished.popitem(last=False)
            ids = self.by_ticket.get(old["ticket_id"] or "", [])
            if old["call_id"] in ids:
                ids.remove(old["call_id"])
                if not ids:
                    del self.by_ticket[old["ticket_id"]]

    def call(self, call_id: str) -> dict[str, Any] | None:
        return self.live.get(call_id) or self.finished.get(call_id)


# ------------------------------------------------------------------ read API


def timeline(recorder: SlaRecorder, *, ticket_id: str | None = None,
             call_id: str | None = None) -> dict[str, Any] | None:
    """The SLA timeline of one call, or of every call of a ticket; None if unknown.

    JSON-able: {"ticket_id", "calls": [call record + derived figures], "steps":
    [{"at", "what", ...}] ordered by time}.
    """
    if (ticket_id is None) == (call_id is None):
        raise ValueError("give exactly one of ticket_id or call_id")
    if call_id is not None:
        ids = [call_id]
    else:
        ids = list(recorder.by_ticket.get(ticket_id or "", []))
    records = [r for r in (recorder.call(i) for i in ids) if r is not None]
    if not records:
        return None
    calls = [_with_figures(r) for r in sorted(records, key=lambda r: r["started_at"])]
    steps = sorted((s for r in records for s in _steps(r)), key=lambda s: (s["at"], s["what"]))
    return {"ticket_id": ticket_id or records[0]["ticket_id"], "calls": calls, "steps": steps}


def _with_figures(record: dict[str, Any]) -> dict[str, Any]:
    out = {**record, "transfers": {}, "legs": {k: dict(v) for k, v in record["legs"].items()}}
    for tid, t in record["transfers"].items():
        t = dict(t)
        if t.get("target_answer_at") is not None:
            t["setup_seconds"] = round(t["target_answer_at"] - t["initiated_at"], 6)
        out["transfers"][tid] = t
    if record["ended_at"] is not None:
        out["duration"] = round(record["ended_at"] - record["started_at"], 6)
    return out


def _steps(record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    call_id = record["call_id"]
    for uid, leg in record["legs"].items():
        for name in ("created_at", "ring_at", "answer_at", "bridge_at", "leave_at"):
            if leg.get(name) is not None:
                yield {"at": leg[name], "what": f"leg.{name[:-3]}", "leg": uid, "call_id": call_id}
    for tid, t in record["transfers"].items():
        for name in _TRANSFER_TIMES:
            if t.get(name) is not None:
                what = t["outcome"] if name == "finished_at" else name[:-3]
                yield {"at": t[name], "what": f"transfer.{what}", "transfer": tid,
                       "kind": t.get("kind"), "call_id": call_id}
    for name, conf in record["conferences"].items():
        if conf["started_at"] is not None:
            yield {"at": conf["started_at"], "what": "conference.start", "conference": name,
                   "call_id": call_id}
        for step, items in (("join", conf["joins"]), ("leave", conf["leaves"])):
            for item in items:
                yield {"at": item["at"], "what": f"conference.{step}", "conference": name,
                       "leg": item["leg"], "call_id": call_id}
        if conf["ended_at"] is not None:
            yield {"at": conf["ended_at"], "what": "conference.end", "conference": name,
                   "call_id": call_id}
    for wait in record["queue"]:
        yield {"at": wait["joined_at"], "what": "queue.join", "queue": wait["queue"],
               "leg": wait["leg"], "call_id": call_id}
        for name in ("answered_at", "abandoned_at"):
            if name in wait:
                yield {"at": wait[name], "what": f"queue.{name[:-3]}", "queue": wait["queue"],
                       "leg": wait["leg"], "call_id": call_id}
    for key in record["keys"]:
        yield {"at": key["at"], "what": "key.pressed", "key": key["key"], "leg": key["leg"],
               "call_id": call_id}
