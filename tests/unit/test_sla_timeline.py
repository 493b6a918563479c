"""SLA timeline built from replayed fixtures; expected times come from the AMI events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from telephony.replay import load_events, renumber
from telephony.sla import SlaRecorder, timeline
from telephony.tracker import Tracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def record(*names: str, max_finished: int = 100) -> tuple[SlaRecorder, list[dict]]:
    tracker, sla, raw = Tracker(), SlaRecorder(max_finished), []
    for name in names:
        for event in load_events(FIXTURES / name):
            raw.append(event)
            sla.apply_all(tracker.feed(event))
    return sla, raw


def ts_of(events: list[dict], name: str, **match: str) -> float:
    for event in events:
        if event["Event"] == name and all(event.get(k) == v for k, v in match.items()):
            return float(event["Timestamp"])
    raise AssertionError(f"no {name} {match}")


def test_blind_transfer_timeline_has_initiation_ring_answer_and_setup_time():
    sla, raw = record("synthetic_blind_transfer.jsonl")
    view = timeline(sla, ticket_id="T-0002")
    assert view is not None and len(view["calls"]) == 1
    (transfer,) = view["calls"][0]["transfers"].values()
    trunk = next(e["Uniqueid"] for e in raw
                 if e["Event"] == "Newchannel" and "trunk110" in e["Channel"])
    assert transfer["kind"] == "blind" and transfer["outcome"] == "completed"
    assert transfer["initiated_at"] == ts_of(raw, "BlindTransfer")
    assert transfer["target_ring_at"] == ts_of(raw, "Newstate", Uniqueid=trunk, ChannelState="5")
    assert transfer["target_answer_at"] == ts_of(raw, "Newstate", Uniqueid=trunk,
                                                 ChannelState="6")
    assert transfer["setup_seconds"] == pytest.approx(
        transfer["target_answer_at"] - transfer["initiated_at"])
    leg = view["calls"][0]["legs"][trunk]
    assert leg["ring_at"] < leg["answer_at"] < leg["bridge_at"] < leg["leave_at"]
    assert leg["leave_at"] == ts_of(raw, "Hangup", Uniqueid=trunk)
    steps = [s["at"] for s in view["steps"]]
    assert steps == sorted(steps)
    assert {"transfer.initiated", "transfer.target_ring", "transfer.target_answer",
            "transfer.completed", "key.pressed"} <= {s["what"] for s in view["steps"]}
    json.dumps(view)  # JSON-able as promised


def test_caller_drop_during_transfer_is_recorded():
    sla, raw = record("synthetic_blind_transfer_caller_drop.jsonl")
    (transfer,) = timeline(sla, ticket_id="T-0002")["calls"][0]["transfers"].values()
    assert transfer["outcome"] == "failed"
    assert transfer["caller_drop_at"] == ts_of(raw, "DialEnd", DialStatus="CANCEL")
    assert "setup_seconds" not in transfer


def test_conference_start_joins_leaves_and_end():
    sla, raw = record("synthetic_conference_three_party.jsonl")
    view = timeline(sla, ticket_id="T-0006")
    conf = view["calls"][0]["conferences"]["T-0006"]
    assert conf["started_at"] == ts_of(raw, "ConfbridgeStart")
    assert conf["ended_at"] == ts_of(raw, "ConfbridgeEnd")
    joins = [float(e["Timestamp"]) for e in raw if e["Event"] == "ConfbridgeJoin"]
    leaves = [float(e["Timestamp"]) for e in raw if e["Event"] == "ConfbridgeLeave"]
    assert [j["at"] for j in conf["joins"]] == joins
    assert [x["at"] for x in conf["leaves"]] == leaves


def test_queue_abandon_wait():
    sla, raw = record("synthetic_queue_abandon.jsonl")
    (wait,) = timeline(sla, ticket_id="T-0004")["calls"][0]["queue"]
    assert wait["joined_at"] == ts_of(raw, "QueueCallerJoin")
    assert wait["abandoned_at"] == ts_of(raw, "QueueCallerAbandon")
    assert wait["wait_seconds"] == pytest.approx(wait["abandoned_at"] - wait["joined_at"])


def test_merged_consultation_call_is_part_of_the_tickets_timeline():
    sla, raw = record("synthetic_attended_transfer.jsonl")
    view = timeline(sla, ticket_id="T-0005")
    assert len(view["calls"]) == 1
    assert set(view["calls"][0]["legs"]) == {e["Uniqueid"] for e in raw
                                             if e["Event"] == "Newchannel"}
    assert timeline(sla, call_id=view["calls"][0]["call_id"])["calls"] == view["calls"]


def test_finished_calls_are_kept_in_a_bounded_lru():
    tracker, sla = Tracker(), SlaRecorder(max_finished=2)
    events = load_events(FIXTURES / "synthetic_simple_call.jsonl")
    for i in range(3):
        for event in renumber(events, f"r{i}", ts_shift=100.0 * i):
            sla.apply_all(tracker.feed(event))
    assert len(sla.finished) == 2 and not sla.live
    assert timeline(sla, ticket_id="T-0001-r0") is None
    assert timeline(sla, ticket_id="T-0001-r2")["calls"][0]["duration"] > 0
    assert set(sla.by_ticket) == {"T-0001-r1", "T-0001-r2"}


def test_read_api_needs_exactly_one_key():
    sla, _ = record("synthetic_simple_call.jsonl")
    with pytest.raises(ValueError):
        timeline(sla)
    with pytest.raises(ValueError):
        timeline(sla, ticket_id="T-0001", call_id="x")
    assert timeline(sla, call_id="no-such-call") is None


def _ticket(raw: list[dict]) -> str:
    return next(v.split("=", 1)[1] for e in raw for v in (e.get("ChanVariable") or [])
                if isinstance(v, str) and v.startswith("TICKET_ID=") and v != "TICKET_ID=")


def test_lab_cross_trunk_timeline_spans_both_nodes_under_one_ticket():
    sla, raw = record("lab_blind_transfer_cross_trunk.jsonl")
    view = timeline(sla, ticket_id=_ticket(raw))
    assert len(view["calls"]) == 1
    (xfer,) = view["calls"][0]["transfers"].values()
    assert xfer["outcome"] == "completed"
    assert xfer["initiated_at"] == ts_of(raw, "BlindTransfer")
    legs = view["calls"][0]["legs"]
    assert {uid.split("-")[0] for uid in legs} == {"node12345", "node110"}
    assert 0 < xfer["setup_seconds"] < 1  # the 110 agent answered at once


def test_lab_attended_cancel_and_return_outcomes_in_the_timeline():
    sla, raw = record("lab_attended_transfer_cancel.jsonl")
    (xfer,) = timeline(sla, ticket_id=_ticket(raw))["calls"][0]["transfers"].values()
    assert (xfer["kind"], xfer["outcome"]) == ("attended", "cancelled")
    assert xfer["initiated_at"] == ts_of(raw, "Hold")

    sla, raw = record("lab_transfer_no_answer.jsonl")
    view = timeline(sla, ticket_id=_ticket(raw))
    (xfer,) = view["calls"][0]["transfers"].values()
    assert (xfer["outcome"], xfer["reason"]) == ("failed", "noanswer")  # the return keeps it
    assert xfer["returned_at"] > xfer["finished_at"]
    assert "transfer.returned" in [s["what"] for s in view["steps"]]


def test_lab_conference_start_is_on_the_tickets_timeline():
    sla, raw = record("lab_conference_three_party.jsonl")
    view = timeline(sla, ticket_id=_ticket(raw))
    (conf,) = view["calls"][0]["conferences"].values()
    assert conf["started_at"] == ts_of(raw, "ConfbridgeStart")
    assert len(conf["joins"]) == len(conf["leaves"]) == 3
    assert conf["ended_at"] == ts_of(raw, "ConfbridgeEnd")
