"""Replay tests: a fixture's AMI events must yield exactly its expected domain events.

Adding a case is one file pair in tests/fixtures/ami: `<name>.jsonl` (AMI events,
recorded from the lab or synthetic) and `<name>.expected.jsonl` (the reviewed
output of `hotline replay <name>.jsonl --events`). Fixture-specific assertions
about the final model live below the generic test.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from telephony.replay import load_events
from telephony.tracker import Tracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
CASES = sorted(p for p in FIXTURES.glob("*.jsonl") if not p.name.endswith(".expected.jsonl"))


def expected_for(fixture: Path) -> Path:
    return fixture.with_name(fixture.name.removesuffix(".jsonl") + ".expected.jsonl")


def run(name: str) -> tuple[Tracker, list[dict]]:
    """Replay a fixture, checking the model invariants after every event."""
    tracker = Tracker()
    out: list[dict] = []
    for event in load_events(FIXTURES / name):
        out.extend(e.to_dict() for e in tracker.feed(event))
        assert tracker.check_invariants() == [], event
    return tracker, out


def kinds(events: list[dict], *wanted: str) -> list[str]:
    return [e["kind"] for e in events if not wanted or e["kind"] in wanted]


def test_fixture_library_is_present():
    names = {p.name for p in CASES}
    assert "synthetic_blind_transfer.jsonl" in names
    assert all(expected_for(p).exists() for p in CASES if p.name.startswith("synthetic_"))


@pytest.mark.parametrize("fixture", [p for p in CASES if expected_for(p).exists()],
                         ids=lambda p: p.stem)
def test_replay_matches_expected_domain_events(fixture: Path):
    _, got = run(fixture.name)
    expected = [json.loads(line) for line in expected_for(fixture).read_text().splitlines()
                if line.strip()]
    # Compare one by one first so a failure names the first divergent event.
    for i, (g, e) in enumerate(zip(got, expected, strict=False)):
        assert g == e, f"event #{i} differs"
    assert len(got) == len(expected)


@pytest.mark.parametrize("fixture", CASES, ids=lambda p: p.stem)
def test_every_call_that_hung_up_is_evicted(fixture: Path):
    tracker, got = run(fixture.name)
    started = Counter(kinds(got, "call.started"))["call.started"]
    merged = Counter(kinds(got, "call.merged"))["call.merged"]
    ended = Counter(kinds(got, "call.ended"))["call.ended"]
    assert started - merged == ended + len(tracker.calls)
    if fixture.name.startswith("synthetic_"):  # every synthetic scenario hangs up in the end
        assert (tracker.calls, tracker.legs, tracker.bridges) == ({}, {}, {})
        assert (tracker.conferences, tracker.tickets) == ({}, {})


# ------------------------------------------------------------ per-fixture facts


def test_simple_call_is_one_call_with_two_legs_and_its_ticket():
    tracker, got = run("synthetic_simple_call.jsonl")
    assert kinds(got, "call.started", "call.ended") == ["call.started", "call.ended"]
    assert tracker.totals["legs"] == 2 and tracker.totals["tickets"] == 1
    assert got[-1]["ticket_id"] == "T-0001"
    assert not tracker.anomalies


def test_blind_transfer_follows_asterisk_order_and_completes_on_bridge():
    events = load_events(FIXTURES / "synthetic_blind_transfer.jsonl")
    tracker, got = run("synthetic_blind_transfer.jsonl")
    xfer = next(e for e in events if e["Event"] == "BlindTransfer")
    completed = next(e for e in got if e["kind"] == "transfer.completed")
    assert completed["data"]["kind"] == "blind"
    assert completed["data"]["initiated_at"] == float(xfer["Timestamp"])
    assert completed["data"]["transferer"] == xfer["TransfererUniqueid"]
    assert completed["data"]["transferee"] == xfer["TransfereeUniqueid"]
    trunk = next(e for e in events if e["Event"] == "Newchannel" and "trunk110" in e["Channel"])
    assert completed["data"]["target"] == trunk["Uniqueid"]
    # the key press precedes the transfer, and the agent leaves before the target exists
    order = kinds(got, "key.pressed", "transfer.started", "leg.left", "transfer.completed")
    assert order[:3] == ["key.pressed", "transfer.started", "leg.left"]
    assert tracker.totals["transfers.blind.completed"] == 1


def test_blind_transfer_caller_drop_fails_with_drop_time():
    tracker, got = run("synthetic_blind_transfer_caller_drop.jsonl")
    failed = next(e for e in got if e["kind"] == "transfer.failed")
    assert failed["data"]["reason"] == "caller_drop"
    assert failed["data"]["caller_drop_at"] >= failed["data"]["target_ring_at"]
    assert "target_answer_at" not in failed["data"]
    assert tracker.totals["transfers.blind.failed"] == 1


def test_queue_answered_and_abandoned():
    _, answered = run("synthetic_queue_answered.jsonl")
    assert kinds(answered, "queue.joined", "queue.answered") == ["queue.joined", "queue.answered"]
    _, abandoned = run("synthetic_queue_abandon.jsonl")
    assert kinds(abandoned, "queue.joined", "queue.abandoned", "queue.answered") == [
        "queue.joined", "queue.abandoned"]


@pytest.mark.parametrize(("name", "kind", "outcome"), [
    ("synthetic_attended_transfer.jsonl", "attended", "completed"),
    ("synthetic_attended_threeway.jsonl", "threeway", "completed"),
    ("synthetic_attended_fail.jsonl", "attended", "failed"),
])
def test_attended_transfer_merges_the_consultation_call(name, kind, outcome):
    tracker, got = run(name)
    # The agent's consultation call had its own linkedid: it becomes part of the ticket's call.
    assert kinds(got, "call.started").count("call.started") == 2
    assert kinds(got, "call.merged") == ["call.merged"]
    assert kinds(got, "call.ended") == ["call.ended"]
    assert tracker.totals[f"transfers.{kind}.{outcome}"] == 1
    finished = next(e for e in got if e["kind"] == f"transfer.{outcome}")
    data = finished["data"]
    assert data["initiated_at"] <= data["target_ring_at"] <= data["target_answer_at"]


def test_threeway_keeps_all_three_parties_in_the_surviving_bridge():
    events = load_events(FIXTURES / "synthetic_attended_threeway.jsonl")
    xfer = next(e for e in events if e["Event"] == "AttendedTransfer")
    tracker = Tracker()
    after_transfer = events[events.index(xfer):]
    for event in events[: events.index(xfer)]:
        tracker.feed(event)
    for event in after_transfer:  # up to the target's move into the surviving bridge
        tracker.feed(event)
        if event["Event"] == "BridgeEnter" and event["Uniqueid"] == xfer["TransferTargetUniqueid"]:
            break
    members = tracker.bridges[xfer["DestBridgeUniqueid"]].members
    assert members == {xfer["TransfereeUniqueid"], xfer["OrigTransfererUniqueid"],
                       xfer["TransferTargetUniqueid"]}


def test_conference_correlates_by_ticket_not_linkedid():
    events = load_events(FIXTURES / "synthetic_conference_three_party.jsonl")
    joins = [e for e in events if e["Event"] == "ConfbridgeJoin"]
    assert len({e["Linkedid"] for e in joins}) == 2  # the desk's Originate has its own linkedid
    tracker, got = run("synthetic_conference_three_party.jsonl")
    joined = [e for e in got if e["kind"] == "conference.joined"]
    assert {e["call_id"] for e in joined} == {joins[0]["Linkedid"]}
    assert {e["ticket_id"] for e in joined} == {"T-0006"}
    assert kinds(got, "conference.started", "conference.ended") == [
        "conference.started", "conference.ended"]
    redirect = next(e for e in got if e["kind"] == "transfer.completed")
    assert redirect["data"]["kind"] == "redirect"
    assert tracker.totals["calls"] == 1


def test_local_channel_optimisation_swaps_the_agent_in():
    events = load_events(FIXTURES / "synthetic_local_optimization.jsonl")
    swap = next(e for e in events if e.get("SwapUniqueid"))
    tracker, got = run("synthetic_local_optimization.jsonl")
    swapped = next(e for e in got if e["kind"] == "leg.unbridged" and "swapped_by" in e["data"])
    assert swapped["leg"] == swap["SwapUniqueid"]
    assert swapped["data"]["swapped_by"] == swap["Uniqueid"]
    assert tracker.totals["calls"] == 1
    assert not tracker.anomalies  # the late BridgeLeave of the swapped half is expected


def test_cross_trunk_leg_gets_its_ticket_from_varset():
    tracker, got = run("synthetic_cross_trunk_node_b.jsonl")
    assert got[-1]["ticket_id"] == "T-0002"
    assert tracker.totals["tickets"] == 1


def test_hangup_race_is_tolerated_and_counted():
    tracker, got = run("synthetic_hangup_race.jsonl")
    assert tracker.anomalies == Counter({"late_event": 3, "adopted_leg": 1, "unknown_leg": 1})
    assert kinds(got, "call.ended") == ["call.ended", "call.ended"]
