"""Replay tests: a fixture's AMI events must yield exactly its expected domain events.

Adding a case is one file pair: `tests/fixtures/ami/<name>.jsonl` (AMI events, recorded
from the lab or synthetic) and its expectation, the reviewed output of
`hotline replay <name>.jsonl --events`. Synthetic expectations sit next to their fixture
(`<name>.expected.jsonl`); the lab's are in `expected/`, out of the `lab_*.jsonl` glob
that the recording checks use. Every replay also checks the model invariants after each
event and the final model. Fixture-specific facts live below the generic tests.
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
LAB_CASES = [p for p in CASES if p.name.startswith("lab_")]


def expected_for(fixture: Path) -> Path:
    name = fixture.name.removesuffix(".jsonl") + ".expected.jsonl"
    in_dir = fixture.parent / "expected" / name
    return in_dir if in_dir.exists() else fixture.with_name(name)


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


def outcomes(events: list[dict]) -> list[tuple[str, str]]:
    """(kind, outcome) of every finished transfer, in order."""
    return [(e["data"]["kind"], e["kind"].split(".")[1]) for e in events
            if e["kind"] in ("transfer.completed", "transfer.failed", "transfer.cancelled")]


def test_fixture_library_is_present():
    names = {p.name for p in CASES}
    assert "synthetic_blind_transfer.jsonl" in names
    assert len(LAB_CASES) >= 11  # every scenario of docs/fixtures.md
    assert all(expected_for(p).exists() for p in CASES)


@pytest.mark.parametrize("fixture", CASES, ids=lambda p: p.stem)
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
    assert tracker.totals["calls"] == started - merged  # distinct calls, after correlation
    # every scenario hangs up in the end: nothing may stay live
    assert (tracker.calls, tracker.legs, tracker.bridges) == ({}, {}, {})
    assert (tracker.conferences, tracker.tickets) == ({}, {})


@pytest.mark.parametrize("fixture", CASES, ids=lambda p: p.stem)
def test_every_transfer_started_is_finished_once(fixture: Path):
    _, got = run(fixture.name)
    started = [e["data"]["transfer"] for e in got if e["kind"] == "transfer.started"]
    finished = [e["data"]["transfer"] for e in got if e["kind"] in (
        "transfer.completed", "transfer.failed", "transfer.cancelled")]
    assert sorted(started) == sorted(finished) == sorted(set(started))


@pytest.mark.parametrize("fixture", LAB_CASES, ids=lambda p: p.stem)
def test_lab_calls_are_one_per_ticket_across_both_nodes(fixture: Path):
    events = load_events(fixture)
    tickets = {v.split("=", 1)[1] for e in events for v in _as_list(e.get("ChanVariable"))
               if v.startswith("TICKET_ID=") and v != "TICKET_ID="}
    tracker, got = run(fixture.name)
    assert tracker.totals["calls"] == tracker.totals["tickets"] == len(tickets)
    ended = [e for e in got if e["kind"] == "call.ended"]
    assert sorted(e["ticket_id"] for e in ended) == sorted(tickets)
    # every channel of the stream, on either node, left as a leg of its ticket's one call
    left = [e for e in got if e["kind"] == "leg.left"]
    assert {e["leg"] for e in left} == {
        e["Uniqueid"] for e in events if e.get("Event") == "Newchannel"}
    call_of_ticket: dict[str, str] = {}
    for e in left:
        assert call_of_ticket.setdefault(e["ticket_id"], e["call_id"]) == e["call_id"]
    assert not tracker.anomalies


def _as_list(raw: str | list[str] | None) -> list[str]:
    return [] if not raw else [raw] if isinstance(raw, str) else raw


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
    # Asterisk 22 order (seen in lab_attended_transfer_threeway): the Local half leaves
    # first, then the real channel's BridgeEnter names it in SwapUniqueid.
    events = load_events(FIXTURES / "synthetic_local_optimization.jsonl")
    swap = next(e for e in events if e.get("SwapUniqueid"))
    tracker, got = run("synthetic_local_optimization.jsonl")
    bridged = next(e for e in got if e["kind"] == "leg.bridged" and "swapped" in e["data"])
    assert (bridged["leg"], bridged["data"]["swapped"]) == (swap["Uniqueid"], swap["SwapUniqueid"])
    optimised = [e["leg"] for e in got
                 if e["kind"] == "leg.unbridged" and e["data"].get("local_optimization")]
    assert swap["SwapUniqueid"] in optimised
    assert tracker.totals["calls"] == 1
    assert not tracker.anomalies


def test_swap_before_the_local_half_leaves_is_tolerated():
    """The reverse order (BridgeEnter with SwapUniqueid first) still swaps cleanly."""
    events = load_events(FIXTURES / "synthetic_local_optimization.jsonl")
    enter = next(i for i, e in enumerate(events) if e.get("SwapUniqueid"))
    events[enter - 1], events[enter] = events[enter], events[enter - 1]
    tracker = Tracker()
    got = []
    for event in events:
        got.extend(e.to_dict() for e in tracker.feed(event))
        assert tracker.check_invariants() == []
    swapped = next(e for e in got if e["kind"] == "leg.unbridged" and "swapped_by" in e["data"])
    assert swapped["leg"] == events[enter - 1]["SwapUniqueid"]
    assert not tracker.anomalies and not tracker.calls


def test_cross_trunk_leg_gets_its_ticket_from_varset():
    tracker, got = run("synthetic_cross_trunk_node_b.jsonl")
    assert got[-1]["ticket_id"] == "T-0002"
    assert tracker.totals["tickets"] == 1


def test_hangup_race_is_tolerated_and_counted():
    tracker, got = run("synthetic_hangup_race.jsonl")
    assert tracker.anomalies == Counter({"late_event": 3, "adopted_leg": 1, "unknown_leg": 1})
    assert kinds(got, "call.ended") == ["call.ended", "call.ended"]


# ------------------------------------------------------- lab facts (docs/fixtures.md)


def raw(name: str, event: str) -> list[dict]:
    return [e for e in load_events(FIXTURES / name) if e["Event"] == event]


@pytest.mark.parametrize(("name", "transfers"), [
    ("lab_simple_call.jsonl", []),
    ("lab_queue_abandon.jsonl", []),
    ("lab_load_20.jsonl", []),
    ("lab_blind_transfer_cross_trunk.jsonl", [("blind", "completed")]),
    ("lab_attended_transfer_complete.jsonl", [("attended", "completed")]),
    ("lab_attended_transfer_cancel.jsonl", [("attended", "cancelled")]),
    ("lab_attended_transfer_threeway.jsonl", [("threeway", "completed")]),
    ("lab_hangup_race.jsonl", [("blind", "failed")]),
    ("lab_transfer_no_answer.jsonl", [("blind", "failed")]),
    # the dual Redirect into the conference is one move of the call
    ("lab_conference_three_party.jsonl", [("redirect", "completed")]),
    ("lab_pull_in_desk.jsonl", [("redirect", "completed")]),
])
def test_lab_transfers_by_kind_and_outcome(name, transfers):
    _, got = run(name)
    assert outcomes(got) == transfers


def test_lab_cross_trunk_blind_transfer_is_one_call_on_both_nodes():
    _, got = run("lab_blind_transfer_cross_trunk.jsonl")
    xfer = raw("lab_blind_transfer_cross_trunk.jsonl", "BlindTransfer")[0]
    trunk = next(e for e in raw("lab_blind_transfer_cross_trunk.jsonl", "Newchannel")
                 if e["Channel"].startswith("PJSIP/trunk110"))
    done = next(e for e in got if e["kind"] == "transfer.completed")["data"]
    assert done["initiated_at"] == float(xfer["Timestamp"])
    assert (done["transferer"], done["transferee"], done["target"]) == (
        xfer["TransfererUniqueid"], xfer["TransfereeUniqueid"], trunk["Uniqueid"])
    assert done["target_ring_at"] <= done["target_answer_at"] <= done["finished_at"]
    ended = next(e for e in got if e["kind"] == "call.ended")
    nodes = {e["leg"].split("-")[0] for e in got if e["kind"] == "leg.left"}
    assert nodes == {"node12345", "node110"} and ended["data"]["transfers"] == 1
    assert kinds(got, "call.merged") == ["call.merged"]  # node110's trunk call joined by ticket


def test_lab_attended_consultation_starts_at_the_hold_and_completes_on_attended_transfer():
    name = "lab_attended_transfer_complete.jsonl"
    hold = raw(name, "Hold")[0]
    xfer = raw(name, "AttendedTransfer")[0]
    _, got = run(name)
    started = next(e for e in got if e["kind"] == "transfer.started")
    done = next(e for e in got if e["kind"] == "transfer.completed")["data"]
    assert started["ts"] == done["initiated_at"] == float(hold["Timestamp"])
    assert started["data"]["transferer"] == hold["Uniqueid"] == xfer["OrigTransfererUniqueid"]
    assert done["target"] == xfer["TransferTargetUniqueid"]
    assert done["destination"] == xfer["DestBridgeUniqueid"]
    assert done["finished_at"] == float(xfer["Timestamp"])
    # live: the start is known when the agent moves into the consultation bridge
    assert kinds(got).index("transfer.started") < kinds(got).index("transfer.completed") - 5


def test_lab_attended_cancel_is_seen_without_any_attended_transfer_event():
    name = "lab_attended_transfer_cancel.jsonl"
    assert raw(name, "AttendedTransfer") == []
    tracker, got = run(name)
    cancelled = next(e for e in got if e["kind"] == "transfer.cancelled")["data"]
    agent_back = [e for e in raw(name, "BridgeEnter") if e["Uniqueid"] == cancelled["transferer"]]
    assert cancelled["finished_at"] == float(agent_back[-1]["Timestamp"])
    assert cancelled["target_answer_at"] < cancelled["finished_at"]
    assert tracker.totals["transfers.attended.cancelled"] == 1


def test_lab_threeway_leaves_caller_agent_and_trunk_in_one_bridge():
    name = "lab_attended_transfer_threeway.jsonl"
    events = load_events(FIXTURES / name)
    xfer = raw(name, "AttendedTransfer")[0]
    swap = next(e for e in events if e.get("SwapUniqueid"))
    tracker = Tracker()
    for event in events[: events.index(swap) + 1]:
        tracker.feed(event)
    assert tracker.bridges[xfer["DestBridgeUniqueid"]].members == {
        xfer["TransfereeUniqueid"], xfer["OrigTransfererUniqueid"], swap["Uniqueid"]}


def test_lab_no_answer_transfer_fails_then_the_caller_returns_to_an_agent():
    name = "lab_transfer_no_answer.jsonl"
    _, got = run(name)
    failed = next(e for e in got if e["kind"] == "transfer.failed")["data"]
    returned = next(e for e in got if e["kind"] == "transfer.returned")["data"]
    assert failed["reason"] == "noanswer" and "target_answer_at" not in failed
    assert returned["transfer"] == failed["transfer"]
    agent = next(e for e in raw(name, "Newchannel")
                 if e["Context"] == "hotline-agent-out" and e["Exten"] == "s"
                 and float(e["Timestamp"]) > failed["finished_at"])
    assert returned["returned_to"] == [agent["Uniqueid"]]
    assert returned["returned_at"] > failed["finished_at"]
    assert "redirect" not in {e["data"]["kind"] for e in got if e["kind"].startswith("transfer.")}


def test_lab_hangup_race_fails_the_transfer_as_a_caller_drop():
    name = "lab_hangup_race.jsonl"
    cancel = next(e for e in raw(name, "DialEnd") if e["DialStatus"] == "CANCEL")
    _, got = run(name)
    failed = next(e for e in got if e["kind"] == "transfer.failed")["data"]
    assert failed["reason"] == "caller_drop"
    assert failed["caller_drop_at"] == float(cancel["Timestamp"])
    assert kinds(got, "queue.abandoned") == ["queue.abandoned"]  # on node110


@pytest.mark.parametrize("name", ["lab_conference_three_party.jsonl", "lab_pull_in_desk.jsonl"])
def test_lab_conference_is_one_call_of_the_ticket_with_three_joins_and_leaves(name):
    joins = raw(name, "ConfbridgeJoin")
    assert len({e["Linkedid"] for e in joins}) == 2  # the Originated party has its own linkedid
    _, got = run(name)
    conf = [e for e in got if e["kind"].startswith("conference.")]
    assert (conf[0]["kind"], conf[-1]["kind"]) == ("conference.started", "conference.ended")
    assert kinds(conf, "conference.joined").count("conference.joined") == 3
    assert kinds(conf, "conference.left").count("conference.left") == 3
    assert len({(e["call_id"], e["ticket_id"]) for e in conf}) == 1  # started carries it too
    start = raw(name, "ConfbridgeStart")[0]
    assert conf[0]["ts"] == float(start["Timestamp"])


def test_lab_load_20_is_twenty_answered_calls():
    tracker, got = run("lab_load_20.jsonl")
    assert Counter(kinds(got, "queue.answered", "call.ended")) == {
        "queue.answered": 20, "call.ended": 20}
    assert tracker.totals["legs"] == 40
