"""The controller's view of the tracker, built from a real lab recording (replayed, no I/O)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from telephony.directory import TrackerDirectory, endpoint_of, role_of
from telephony.tracker import Tracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def replay_until(name: str, stop_event: str, stop_channel_prefix: str) -> Tracker:
    """Feed a recording up to (and including) the first matching event."""
    tracker = Tracker()
    for line in (FIXTURES / name).read_text().splitlines():
        event = json.loads(line)
        tracker.feed(event)
        if event.get("Event") == stop_event and event.get("Channel", "").startswith(
            stop_channel_prefix
        ):
            return tracker
    raise AssertionError(f"{stop_event} on {stop_channel_prefix} not in {name}")


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("PJSIP/agent12345-1-0000002a", ("agent", "agent12345-1")),
        ("PJSIP/anonymous-00000005", ("caller", None)),
        ("PJSIP/trunk110-00000009", ("trunk", None)),
        ("PJSIP/desk120-0000000b", ("desk", None)),
        ("Local/110@hotline-out-00000001;1", ("local", None)),
    ],
)
def test_roles_come_from_endpoint_names(channel: str, expected: tuple) -> None:
    assert role_of(channel) == expected


def test_endpoint_of_rejects_non_pjsip_names() -> None:
    assert endpoint_of("PJSIP/agent110-2-000000ff") == "agent110-2"
    assert endpoint_of("Local/x@y-1;2") is None


def test_a_bridged_call_is_seen_with_its_agent_caller_and_ticket() -> None:
    tracker = replay_until("lab_simple_call.jsonl", "BridgeEnter", "PJSIP/anonymous")
    directory = TrackerDirectory(tracker, "12345", "q12345")
    call_id = directory.call_for_agent("agent12345-1")
    assert call_id is not None
    call = directory.get_call(call_id)
    assert call is not None
    agent = call.agent_leg("agent12345-1")
    assert agent is not None and agent.up
    peer = call.bridged_peer(agent)
    assert peer is not None and peer.role == "caller"
    assert call.ticket is not None and call.ticket.origin == "12345"
    assert call.platform == "12345" and call.queue == "q12345"
    assert directory.call_for_channel(agent.channel) == call_id
    assert call.agents() == {"agent12345-1"}


def test_nothing_is_found_after_the_call_ends() -> None:
    tracker = Tracker()
    for line in (FIXTURES / "lab_simple_call.jsonl").read_text().splitlines():
        tracker.feed(json.loads(line))
    directory = TrackerDirectory(tracker, "12345", "q12345")
    assert directory.call_for_agent("agent12345-1") is None
    assert directory.get_call("no-such-call") is None
