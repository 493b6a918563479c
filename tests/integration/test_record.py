"""`hotline record` on the real lab: a scenario's AMI events land in JSON Lines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from telephony import record
from telephony.lab.lab import Lab


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hotline")
    record.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


async def test_recording_simple_call_captures_the_call_on_node12345(lab: Lab) -> None:
    recording = await record.record(lab, "simple_call")
    events = [e for e in recording.events if e.get("SystemName") == "node12345"]
    names = [e["Event"] for e in events]
    for name in ("Newchannel", "QueueCallerJoin", "BridgeEnter", "Hangup"):
        assert name in names, name
    bridge_enters = [e for e in events if e["Event"] == "BridgeEnter"]
    assert {e["Channel"].split("-")[0] for e in bridge_enters} == {
        "PJSIP/anonymous",
        "PJSIP/agent12345",
    }
    hangups = [e for e in events if e["Event"] == "Hangup"]
    tickets = {
        v
        for e in (*bridge_enters, *hangups)
        for v in e["ChanVariable"]
        if v.startswith("TICKET_ID=T12345-")
    }
    assert len(tickets) == 1  # caller and agent legs carry the same ticket
    assert names.index("Newchannel") < names.index("BridgeEnter") < names.index("Hangup")


def test_cli_writes_one_json_event_per_line(lab: Lab, tmp_path: Path, capsys) -> None:
    out = tmp_path / "abandon.jsonl"
    # The session's `lab` fixture already holds the lab's lock.
    assert _cli(["record", "queue_abandon", "--out", str(out), "--lab-already-held"]) == 0
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert events and all(e["SystemName"] == "node12345" for e in events)
    assert "QueueCallerAbandon" in [e["Event"] for e in events]
    # The summary is the last stdout line (AMI session logs may come before it).
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] == len(events)
    assert summary["counts"]["QueueCallerAbandon"] == 1


def test_cli_lists_every_scenario(capsys) -> None:
    assert _cli(["record", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(record.SCENARIOS)


def test_cli_rejects_an_unknown_scenario() -> None:
    with pytest.raises(SystemExit):
        _cli(["record", "no_such_scenario", "--out", "x.jsonl"])
