"""The recorded lab fixtures (tests/fixtures/ami/lab_*.jsonl) are real, whole AMI streams.

Also checks the recorder's filter that keeps only the scenario's own calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from telephony.lab.ami_scenarios import CALLER_PREFIX, SCENARIOS, own_calls
from telephony.record import keep_own_calls

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
LAB_FIXTURES = sorted(FIXTURES.glob("lab_*.jsonl"))
NODES = {"node12345", "node110"}
# Asterisk stamps an event when it is raised, and a few are queued out of order by a
# few microseconds (seen: ConfbridgeLeave after its BridgeLeave). More than this is a bug.
REORDER_TOLERANCE_S = 0.005


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_there_is_a_recording_of_every_scenario() -> None:
    recorded = {p.stem.removeprefix("lab_") for p in LAB_FIXTURES}
    assert recorded == set(SCENARIOS)


@pytest.mark.parametrize("path", LAB_FIXTURES, ids=lambda p: p.name)
def test_fixture_is_a_non_empty_stream_of_real_node_events(path: Path) -> None:
    events = _load(path)
    assert events, path
    # Every line is an event; action replies (the Login reply among them) have no Event.
    assert all(isinstance(e, dict) and e.get("Event") for e in events)
    assert {e.get("SystemName") for e in events} <= NODES
    assert any(e["Event"] == "Newchannel" for e in events)


@pytest.mark.parametrize("path", LAB_FIXTURES, ids=lambda p: p.name)
def test_timestamps_rise_per_node(path: Path) -> None:
    newest: dict[str, float] = {}
    for index, event in enumerate(_load(path)):
        node, stamp = event["SystemName"], float(event["Timestamp"])
        assert stamp >= newest.get(node, 0.0) - REORDER_TOLERANCE_S, (index, event["Event"])
        newest[node] = max(stamp, newest.get(node, 0.0))


@pytest.mark.parametrize("path", LAB_FIXTURES, ids=lambda p: p.name)
def test_fixture_holds_only_the_scenarios_own_calls(path: Path) -> None:
    events = _load(path)
    ours = own_calls(events)
    assert all((e["SystemName"], e["Linkedid"]) in ours for e in events if "Linkedid" in e)


@pytest.mark.parametrize("path", LAB_FIXTURES, ids=lambda p: p.name)
def test_every_call_has_a_ticket_id_on_its_channel_events(path: Path) -> None:
    events = _load(path)
    tickets = {
        v.removeprefix("TICKET_ID=")
        for e in events
        for v in e.get("ChanVariable", [])
        if v.startswith("TICKET_ID=T")
    }
    assert tickets
    assert all(t.startswith(("T12345-", "T110-")) for t in tickets)


def _channel_event(node: str, linkedid: str, caller: str, **extra: object) -> dict:
    return {
        "Event": "Newchannel",
        "SystemName": node,
        "Linkedid": linkedid,
        "CallerIDNum": caller,
        "ConnectedLineNum": "<unknown>",
        **extra,
    }


def test_keep_own_calls_drops_another_users_call_and_its_bridge() -> None:
    ours = _channel_event("node12345", "a.1", f"{CALLER_PREFIX}0001")
    theirs = _channel_event("node12345", "b.1", "13800000001")
    events = [
        {"Event": "FullyBooted", "Status": "Fully Booted"},
        ours,
        theirs,
        {"Event": "BridgeCreate", "SystemName": "node12345", "BridgeUniqueid": "br-b"},
        {
            "Event": "BridgeEnter",
            "SystemName": "node12345",
            "Linkedid": "b.1",
            "BridgeUniqueid": "br-b",
        },
        {"Event": "QueueMemberAdded", "SystemName": "node12345", "Queue": "q12345"},
    ]
    assert keep_own_calls(events, CALLER_PREFIX) == [ours, events[-1]]


def test_keep_own_calls_follows_the_ticket_callback_across_the_trunk() -> None:
    # On node110 the trunk leg's caller id may be anything; the ticket callback is ours.
    trunk_leg = _channel_event(
        "node110",
        "c.9",
        "agent12345-1",
        ChanVariable=["TICKET_ID=T12345-1-1", f"TICKET_CALLBACK={CALLER_PREFIX}0001"],
    )
    assert keep_own_calls([trunk_leg], CALLER_PREFIX) == [trunk_leg]
