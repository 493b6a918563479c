"""`hotline replay FILE` through this module's register(), on a fresh parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from telephony import replay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hotline")
    replay.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_replay_prints_a_json_summary(capsys):
    fixture = FIXTURES / "synthetic_blind_transfer.jsonl"
    assert run_cli(["replay", str(fixture)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == len(replay.load_events(fixture))
    assert summary["calls"] == 1 and summary["legs"] == 3 and summary["tickets"] == 1
    assert summary["transfers"] == {"blind": {"completed": 1}}
    assert summary["conferences"] == 0
    assert summary["events_per_second"] > 0
    assert summary["live"] == {"calls": 0, "legs": 0, "bridges": 0}


def test_replay_accepts_a_json_array_and_prints_events(tmp_path, capsys):
    events = replay.load_events(FIXTURES / "synthetic_conference_three_party.jsonl")
    array = tmp_path / "conf.json"
    array.write_text(json.dumps(events))
    assert run_cli(["replay", str(array), "--events"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    expected = FIXTURES / "synthetic_conference_three_party.expected.jsonl"
    assert lines == [json.loads(x) for x in expected.read_text().splitlines()]


def test_replay_reports_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"Event": "Newchannel"}\n[1, 2]\n')
    assert run_cli(["replay", str(bad)]) == 2
    assert "must be a JSON object" in capsys.readouterr().err
    assert run_cli(["replay", str(tmp_path / "missing.jsonl")]) == 2
