"""The monitor's pure parts (views, queue board, feed filter and log, delta builder) and its hub.

Calls come from AMI streams recorded on the real lab (tests/fixtures/ami/lab_*.jsonl),
replayed node by node into a tracker as the service would; the hub is tested with
fake clients and an in-memory stand-in for its Redis stream.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from telephony import domain_events as de
from telephony.domain_events import DomainEvent
from telephony.monitor.feed import DeltaBuilder, FeedLog, Filter
from telephony.monitor.hub import CLOSE_TOO_SLOW, HubLimits, MonitorHub
from telephony.monitor.queues import QueueBoard
from telephony.monitor.testing import InMemoryMonitorStore
from telephony.replay import load_events
from telephony.tracker import Tracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
NODE = {"12345": "node12345", "110": "node110"}


class Replay:
    """A tracker, board and hub fed one recorded node's events, one build per event."""

    def __init__(self, platform: str = "12345", **hub_kw: Any) -> None:
        self.now = 0.0
        self.tracker = Tracker()
        self.board = QueueBoard()
        self.store = InMemoryMonitorStore()
        self.hub = MonitorHub(DeltaBuilder(self.tracker, self.board, platform), self.store,
                              clock=lambda: self.now, **hub_kw)
        self.platform = platform

    def feed(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("SystemName") not in (None, NODE[self.platform]):
                continue
            self.now = float(event.get("Timestamp", self.now))
            facts = self.tracker.feed(event)
            if facts:
                self.hub.note_facts(facts, self.now)
            else:
                self.hub.note_member_event(event, self.now)

    def play(self, name: str) -> Replay:
        self.feed(load_events(FIXTURES / f"{name}.jsonl"))
        return self

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(text) for _, text in self.store.entries]

    def calls(self, op: str = "upsert") -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "call" and m["op"] == op]


# --- views and the delta builder on recorded calls --------------------------------

def test_a_blind_transfer_on_the_12345_node_reads_as_a_supervisor_expects() -> None:
    r = Replay("12345").play("lab_blind_transfer_cross_trunk")
    states = [m["call"]["state"] for m in r.calls()]
    # In order, each state once or more: the caller arrives, queues, rings an agent,
    # talks, is transferred across the trunk and talks to 110, then the call ends.
    order = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    for earlier, later in [("ivr", "queued"), ("queued", "talking"),
                           ("talking", "transferring")]:
        assert order.index(earlier) < order.index(later), order
    assert order[-1] == "ending" and order.count("transferring") == 1
    transferring = next(m for m in r.calls() if m["call"]["state"] == "transferring")
    assert transferring["call"]["transfer"]["kind"] == "blind"
    assert transferring["call"]["transfer"]["destination"]
    # The agent leaves with the transfer: the message that drops it names it.
    left = next(m for m in r.calls() if m["former_agents"])
    assert left["former_agents"] == ["agent12345-1"] and "agent12345-1" in left["agents"]
    assert left["call"]["agents"] == []
    ended = r.calls("remove")
    assert len(ended) == 1 and ended[0]["facts"] == ["call.ended"]
    assert ended[0]["queue"] == "q12345"  # the call's queue outlives its wait
    # Every client that saw the call sees it go: the remove carries the same keys.
    assert ended[0]["ticket_id"] == left["ticket_id"] and ended[0]["ticket_id"]
    assert Filter(ticket=left["ticket_id"]).matches(ended[0])


def test_the_receiving_agent_gets_a_screen_pop_with_the_ticket_when_its_phone_rings() -> None:
    r = Replay("110").play("lab_blind_transfer_cross_trunk")
    msgs = r.messages
    pop = next(m for m in msgs if m["type"] == "screen_pop")
    assert pop["agent"] == "agent110-1" and pop["agents"] == ["agent110-1"]
    assert pop["ticket"]["id"].startswith("T12345-") and pop["ticket"]["origin"] == "12345"
    assert pop["ticket"]["callback"] == "13999990001"
    assert pop["call"]["origin"] == "12345" and pop["platforms"] == ["110", "12345"]
    # The pop comes with the ringing, before the agent answers.
    ringing = next(i for i, m in enumerate(msgs) if "leg.ringing" in m.get("facts", ()))
    answered = next(i for i, m in enumerate(msgs)
                    if m["type"] == "call" and any(leg["role"] == "agent" and leg["state"] == "up"
                                                   for leg in m["call"]["legs"]))
    assert ringing < msgs.index(pop) < answered
    assert sum(1 for m in msgs if m["type"] == "screen_pop") == 1
    # A 110 board filtered to calls first taken by 12345 sees the call come and go.
    first_taken_by_12345 = [m for m in r.calls("upsert") + r.calls("remove")
                            if Filter(platform="12345").matches(m)]
    assert first_taken_by_12345[-1]["op"] == "remove"


def test_a_three_party_call_shows_its_conference_and_the_merged_call_ends() -> None:
    r = Replay("12345").play("lab_conference_three_party")
    conf = [m for m in r.calls() if m["call"]["state"] == "conference"]
    biggest = max(conf, key=lambda m: len(m["call"]["conference"]["members"]))
    members = set(biggest["call"]["conference"]["members"])
    roles = {leg["role"] for leg in biggest["call"]["legs"] if leg["leg_id"] in members}
    assert len(members) == 3 and {"caller", "agent"} <= roles, roles
    # The Local channel's call merged into the main one: removed from the feed, once.
    removed = [m["call_id"] for m in r.calls("remove")]
    assert len(removed) == len(set(removed)) == 2
    assert biggest["call_id"] in removed


def test_ticket_summary_is_decoded_text_and_context_fields_are_named() -> None:
    tracker = Tracker()
    r = Replay("12345")
    r.tracker = r.hub.builder.tracker = tracker
    r.feed([{"Event": "Newchannel", "Uniqueid": "u1", "Linkedid": "u1",
             "Channel": "PJSIP/anonymous-00000001", "ChannelState": "6", "Timestamp": "10.0",
             "ChanVariable": ["TICKET_ID=T1", "TICKET_ORIGIN=12345",
                              "TICKET_SUMMARY=%3Cimg%20src%3Dx%3E%E5%99%AA%E9%9F%B3",
                              "TICKET_DIVISION=440100"]}])
    view = r.calls()[-1]["call"]
    assert view["ticket"] == {"id": "T1", "origin": "12345", "category": "", "callback": "",
                              "division": "440100", "urgency": "", "summary": "<img src=x>噪音"}
    assert view["state"] == "ivr" and view["legs"][0]["role"] == "caller"


def test_an_ended_call_leaves_no_state_behind_in_the_builder() -> None:
    r = Replay("12345").play("lab_blind_transfer_cross_trunk")
    b = r.hub.builder
    assert not b.pending and not b.home_queue and not b._last_keys and not b._popped


# --- queue board ------------------------------------------------------------------

def member(event: str, **kw: str) -> dict[str, str]:
    return {"Event": event, "Queue": "q12345", "Interface": "PJSIP/agent12345-1",
            "MemberName": "PJSIP/agent12345-1", **kw}


def fact(kind: str, ts: float, leg: str = "c1", **data: Any) -> DomainEvent:
    return DomainEvent(kind, ts, "call1", None, leg, data)


def test_member_events_drive_the_agent_tile() -> None:
    board = QueueBoard()
    assert board.on_ami_event(member("QueueMemberAdded", Status="1", Paused="0")) \
        == {"agent12345-1"}
    assert board.agent_view("agent12345-1", None)["status"] == "free"
    board.on_ami_event(member("QueueMemberPause", Paused="1", PausedReason="lunch"))
    tile = board.agent_view("agent12345-1", None)
    assert tile["status"] == "paused" and tile["paused_reason"] == "lunch"
    board.on_ami_event(member("QueueMemberStatus", Status="6", Paused="0"))
    assert board.agent_view("agent12345-1", None)["status"] == "ringing"
    board.on_ami_event(member("QueueMemberStatus", Status="2", InCall="1", CallsTaken="3"))
    tile = board.agent_view("agent12345-1", "call1")
    assert tile["status"] == "busy" and tile["calls_taken"] == 3 and tile["call_id"] == "call1"
    assert board.agent_view("agent12345-1", "call1", ringing=True)["status"] == "ringing"
    board.on_ami_event(member("QueueMemberStatus", Status="5", InCall="0"))
    assert board.agent_view("agent12345-1", None)["status"] == "unavailable"
    assert board.on_ami_event(member("QueueMemberRemoved")) == {"agent12345-1"}
    assert board.agent_view("agent12345-1", None)["status"] == "logged_out"


def test_malformed_member_events_are_counted_not_raised() -> None:
    board = QueueBoard()
    assert board.on_ami_event({"Event": "QueueMemberStatus", "Queue": "q"}) == set()
    assert board.on_ami_event(member("QueueMemberStatus", Status="zz", CallsTaken="x")) \
        == {"agent12345-1"}
    assert board.anomalies == 1
    assert board.agent_view("agent12345-1", None)["status"] == "unknown"


def test_day_counts_service_level_abandons_and_the_day_boundary() -> None:
    board = QueueBoard(service_level_s=15, timezone="Asia/Shanghai")
    base = 1_796_086_800.0  # 2026-12-01 09:00 Beijing time (01:00 UTC)
    board.on_facts([fact(de.QUEUE_JOINED, base, "a", queue="q12345"),
                    fact(de.QUEUE_ANSWERED, base + 15.0, "a", queue="q12345"),  # at 15 s: in
                    fact(de.QUEUE_JOINED, base, "b", queue="q12345"),
                    fact(de.QUEUE_ANSWERED, base + 15.5, "b", queue="q12345"),  # over
                    fact(de.QUEUE_JOINED, base, "c", queue="q12345"),
                    fact(de.QUEUE_ABANDONED, base + 3, "c", queue="q12345"),
                    fact(de.QUEUE_JOINED, base, "d", queue="q12345")])
    today = board.queue_view("q12345", Tracker(), base + 20)["today"]
    assert (today["offered"], today["answered"], today["answered_within_sl"],
            today["abandoned"]) == (4, 2, 1, 1)
    assert today["service_level"] == pytest.approx(1 / 3, abs=1e-4)
    assert today["mean_wait_s"] == pytest.approx(15.25)
    assert today["day"] == "2026-12-01"
    # 16 hours later it is another day in Beijing: the tile starts from zero.
    tomorrow = board.queue_view("q12345", Tracker(), base + 16 * 3600)["today"]
    assert tomorrow["day"] == "2026-12-02" and tomorrow["offered"] == 0
    assert tomorrow["service_level"] is None


def test_a_caller_who_hangs_up_while_queued_is_forgotten() -> None:
    board = QueueBoard()
    board.on_facts([fact(de.QUEUE_JOINED, 1.0, "a", queue="q"), fact(de.LEG_LEFT, 2.0, "a")])
    assert board._joined == {}


def test_an_unknown_time_zone_falls_back_to_china_time() -> None:
    board = QueueBoard(timezone="Mars/Olympus")
    assert board._day_of(1_796_086_800.0 - 3600) == "2026-12-01"  # 00:00 in Beijing


def test_waiting_callers_and_agent_counts_on_the_queue_tile() -> None:
    r = Replay("12345")
    events = load_events(FIXTURES / "lab_blind_transfer_cross_trunk.jsonl")
    r.feed(events[:next(i for i, e in enumerate(events) if e["Event"] == "QueueCallerJoin") + 1])
    tile = r.board.queue_view("q12345", r.tracker, r.now + 20)
    assert tile["waiting"] == 1 and tile["waiting_calls"][0]["since"] == tile[
        "oldest_waiting_since"]
    assert r.now + 20 - tile["oldest_waiting_since"] >= 20  # an SLA breach on the board
    assert tile["agents"]["logged_in"] == 1


# --- filters and the log ---------------------------------------------------------------

CALL_MSG = {"type": "call", "platforms": ["110", "12345"], "queue": "q110",
            "agents": ["agent110-1"], "ticket_id": "T1"}


@pytest.mark.parametrize(("flt", "expected"), [
    (Filter(), True),
    (Filter(platform="12345"), True),
    (Filter(platform="119"), False),
    (Filter(queue="q110"), True),
    (Filter(queue="q12345"), False),
    (Filter(agent="agent110-1"), True),
    (Filter(agent="agent110-2"), False),
    (Filter(ticket="T1"), True),
    (Filter(ticket="T2"), False),
    (Filter(queue="q110", agent="agent110-1", ticket="T1"), True),
])
def test_call_message_filters(flt: Filter, expected: bool) -> None:
    assert flt.matches(CALL_MSG) is expected
    assert flt.matches({**CALL_MSG, "type": "screen_pop"}) is expected


def test_tile_filters() -> None:
    queue = {"type": "queue", "queue": {"name": "q110"}}
    agent = {"type": "agent", "agent": {"agent": "agent110-1", "queues": ["q110"]}}
    assert Filter(agent="agent110-2").matches(queue)  # queue tiles hold no personal data
    assert not Filter(queue="q12345").matches(queue)
    assert not Filter(ticket="T1").matches(queue) and not Filter(ticket="T1").matches(agent)
    assert Filter(agent="agent110-1").matches(agent)
    assert not Filter(agent="agent110-2").matches(agent)
    assert not Filter(queue="q12345").matches(agent)
    assert Filter(ticket="T9").matches({"type": "reset"})


def test_feed_log_after_covers_exactly_what_the_ring_holds() -> None:
    log = FeedLog(ring_size=3)
    for i in range(5):
        log.append({"type": "queue", "i": i})
    assert log.seq == 5 and [s for s, _, _ in log.ring] == [3, 4, 5]
    assert log.after(5) == []
    assert [s for s, _, _ in log.after(2) or []] == [3, 4, 5]
    assert [s for s, _, _ in log.after(4) or []] == [5]
    assert log.after(1) is None  # seq 2 is gone
    assert log.after(6) is None  # the future
    assert json.loads(log.ring[-1][2]) == {"type": "queue", "i": 4, "seq": 5}


# --- the hub: fan-out, resume, slow clients ------------------------------------------

class FakeClient:
    def __init__(self, block: bool = False) -> None:
        self.got: list[tuple[int, dict[str, Any]]] = []
        self.closed: tuple[int, str] | None = None
        self.gate = asyncio.Event()
        if not block:
            self.gate.set()

    async def send(self, seq: int, text: str) -> None:
        await self.gate.wait()
        self.got.append((seq, json.loads(text)))

    async def close(self, code: int, why: str) -> None:
        self.closed = (code, why)


def queue_change(hub: MonitorHub, n: int = 1) -> None:
    for _ in range(n):
        hub.note_member_event({"Event": "QueueMemberStatus", "Queue": "q12345",
                               "Interface": "PJSIP/agent12345-1", "Status": "1"}, 1.0)
        hub.flush()  # what the event pump does once it has no event waiting


async def started_hub(**kw: Any) -> tuple[MonitorHub, InMemoryMonitorStore]:
    store = kw.pop("store", None) or InMemoryMonitorStore()
    hub = MonitorHub(DeltaBuilder(Tracker(), QueueBoard(), "12345"), store, clock=lambda: 5.0,
                     **kw)
    await hub.start()
    return hub, store


async def drain(*tasks: asyncio.Task[None]) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_hub_numbers_stores_and_fans_out_by_filter() -> None:
    hub, store = await started_hub()
    everyone, other_agent = FakeClient(), FakeClient()
    a = await hub.connect(Filter(), None, everyone.send, everyone.close)
    b = await hub.connect(Filter(agent="agent12345-9"), None, other_agent.send, other_agent.close)
    tasks = [asyncio.create_task(hub.run_client(c)) for c in (a, b)]
    queue_change(hub)
    await drain()
    assert [m["type"] for _, m in everyone.got] == ["snapshot", "queue", "agent"]
    assert everyone.got[0][1]["seq"] == 1 and everyone.got[0][1]["reason"] == "connect"
    assert [s for s, _ in everyone.got[1:]] == [2, 3]
    assert [m["type"] for _, m in other_agent.got] == ["snapshot", "queue"]
    assert [s for s, _ in store.entries] == [1, 2, 3]  # reset, queue, agent
    assert json.loads(store.entries[0][1])["type"] == "reset"
    await hub.stop()
    await asyncio.gather(*tasks)
    assert everyone.closed == (1001, "service stopping") and not hub.clients


async def test_changes_wait_at_most_max_delay_for_a_build_and_a_burst_is_one() -> None:
    hub, store = await started_hub(max_delay=0.02)
    for status in ("1", "2", "1"):  # a burst: three changes of one member
        hub.note_member_event({"Event": "QueueMemberStatus", "Queue": "q12345",
                               "Interface": "PJSIP/agent12345-1", "Status": status}, 1.0)
    assert [json.loads(t)["type"] for _, t in store.entries] == ["reset"]  # not yet
    await asyncio.sleep(0.06)
    assert [json.loads(t)["type"] for _, t in store.entries] == ["reset", "queue", "agent"]
    await hub.stop()


async def test_the_hub_continues_numbering_from_redis_and_survives_redis_down() -> None:
    store = InMemoryMonitorStore()
    store.entries = [(41, "{}")]
    hub, _ = await started_hub(store=store)
    assert hub.log.seq == 42
    down = InMemoryMonitorStore()
    down.fail_reads = True
    hub2, _ = await started_hub(store=down)
    assert hub2.log.seq == 1
    await hub.stop()
    await hub2.stop()


async def test_resume_from_the_ring_from_redis_or_a_snapshot_with_its_reason() -> None:
    hub, store = await started_hub(ring_size=4)
    queue_change(hub, 3)  # seq 2..7
    assert hub.log.seq == 7
    # From the ring: exactly what came after, no snapshot.
    c = FakeClient()
    client = await hub.connect(Filter(), 5, c.send, c.close)
    assert [s for s, _ in client.queue] == [6, 7]
    # From Redis, as the ring holds only 4..7.
    client = await hub.connect(Filter(), 2, c.send, c.close)
    assert [s for s, _ in client.queue] == [3, 4, 5, 6, 7]
    # The range holds the service's start: a snapshot.
    client = await hub.connect(Filter(), 0, c.send, c.close)
    assert json.loads(client.queue[0][1])["reason"] == "restart"
    # Ahead of the feed; and behind what Redis still holds.
    client = await hub.connect(Filter(), 99, c.send, c.close)
    assert json.loads(client.queue[0][1])["reason"] == "unknown_seq"
    del store.entries[:3]
    client = await hub.connect(Filter(), 2, c.send, c.close)
    assert json.loads(client.queue[0][1])["reason"] == "too_far_behind"
    store.fail_reads = True
    client = await hub.connect(Filter(), 2, c.send, c.close)
    assert json.loads(client.queue[0][1])["reason"] == "too_far_behind"
    # A filtered resume gets only its own messages.
    client = await hub.connect(Filter(ticket="T1"), 5, c.send, c.close)
    assert list(client.queue) == []
    await hub.stop()


async def test_a_blocked_client_is_skipped_ahead_then_disconnected_and_others_flow() -> None:
    hub, _ = await started_hub(limits=HubLimits(max_queue=3, max_skips=1, skip_window=60))
    slow, fast = FakeClient(block=True), FakeClient()
    s = await hub.connect(Filter(), None, slow.send, slow.close)
    f = await hub.connect(Filter(), None, fast.send, fast.close)
    tasks = [asyncio.create_task(hub.run_client(c)) for c in (s, f)]
    await drain()
    for _ in range(2):  # 4 messages: over the slow client's queue of 3
        queue_change(hub)
        await drain()  # the fast client's sender takes its turn
    assert s.skip_ahead and not s.queue
    slow.gate.set()
    await drain()
    assert slow.got[-1][1]["type"] == "snapshot"
    assert slow.got[-1][1]["reason"] == "skipped_ahead"
    assert slow.got[-1][1]["seq"] == hub.log.seq  # the snapshot covers everything skipped
    slow.gate.clear()
    await drain()
    for _ in range(4):  # the second skip within the window: disconnected
        queue_change(hub)
        await drain()
    assert slow.closed is not None and slow.closed[0] == CLOSE_TOO_SLOW
    assert s not in hub.clients and f in hub.clients
    seqs = [seq for seq, _ in fast.got[1:]]
    assert seqs == list(range(fast.got[0][0] + 1, hub.log.seq + 1))  # no gap for the other
    await hub.stop()
    for t in tasks:
        t.cancel()


async def test_a_socket_that_stalls_is_disconnected_by_the_watchdog() -> None:
    hub, _ = await started_hub(limits=HubLimits(stall_s=0.1))
    stuck = FakeClient(block=True)
    client = await hub.connect(Filter(), None, stuck.send, stuck.close)
    task = asyncio.create_task(hub.run_client(client))
    await asyncio.sleep(0.4)
    assert stuck.closed == (CLOSE_TOO_SLOW, "socket stalled") and client not in hub.clients
    await hub.stop()
    task.cancel()


def test_bursts_of_facts_about_one_call_become_one_message() -> None:
    r = Replay("12345")
    events = [e for e in load_events(FIXTURES / "lab_blind_transfer_cross_trunk.jsonl")
              if e.get("SystemName") == "node12345"]
    builder = r.hub.builder
    for event in events:  # no build in between: as when a burst is read in one loop turn
        builder.note_facts(r.tracker.feed(event), 1.0)
    out = builder.build(2.0)
    assert [m["op"] for m in out if m["type"] == "call"] == ["remove"]
    assert not builder.pending
