"""Process AGI under pyst2: a real `python -m ivr.process_agi` talking over pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ivr.process_agi import main
from ivr.testing import EOF, ScriptedPeer, agi_headers, header_block, parse_command

AGI_VERBS = {"ANSWER", "STREAM FILE", "WAIT FOR DIGIT", "GET DATA", "GET VARIABLE", "SET VARIABLE"}
ROOT = Path(__file__).resolve().parents[2]


def run_agi(route: str, peer: ScriptedPeer, tmp_path: Path) -> tuple[int, Path]:
    """Play Asterisk on the other end of stdin/stdout, one command at a time."""
    ticket_log = tmp_path / "tickets.jsonl"
    env = {**os.environ, "HOTLINE_IVR_TICKET_LOG": str(ticket_log), "PYTHONPATH": str(ROOT)}
    errors = (tmp_path / "stderr.txt").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr.process_agi", route],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(header_block(agi_headers(route)).decode())
    proc.stdin.flush()
    for line in proc.stdout:
        reply = peer.respond(line)
        if reply == EOF:
            break
        proc.stdin.write(reply + "\n")
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait(timeout=20)
    errors.seek(0)
    stderr = errors.read()
    errors.close()
    assert "Traceback" not in stderr, stderr
    stray = [c for c in peer.commands if parse_command(c)[0] not in AGI_VERBS]
    assert not stray, f"non-AGI output on stdout: {stray[:3]}"
    return proc.returncode, ticket_log


def test_110_diversion_over_pipes(tmp_path):
    peer = ScriptedPeer(["3", "2", "1"])
    code, _ = run_agi("ingress-110", peer, tmp_path)
    assert code == 0
    assert peer.commands[0] == "ANSWER"
    assert peer.final_vars["HOTLINE_DEST"] == "12345"
    assert peer.final_vars["__TICKET_ORIGIN"] == "110"
    assert peer.final_vars["__TICKET_CATEGORY"] == "ivr.complaint"


def test_12345_surge_callback_uses_dialplan_stats_and_ticket_log(tmp_path):
    peer = ScriptedPeer(
        ["1", "2", "1"],
        variables={
            "QUEUE_WAITING_COUNT(q12345)": "30",
            "QUEUEHOLDTIME": "120",
            "QUEUE_MEMBER(q12345,logged)": "2",
        },
    )
    code, ticket_log = run_agi("ingress-12345", peer, tmp_path)
    assert code == 0
    assert 'GET VARIABLE "QUEUE_WAITING_COUNT(q12345)"' in peer.commands
    assert peer.final_vars["HOTLINE_DEST"] == "done"
    [record] = [json.loads(line) for line in ticket_log.read_text().splitlines()]
    assert record["kind"] == "callback"
    assert record["callback_number"] == "13800138000"
    assert record["context"]["ticket_id"] == peer.final_vars["__TICKET_ID"]


def test_hangup_ends_process_cleanly(tmp_path):
    for style in ("eof", "line"):
        peer = ScriptedPeer(["hangup:" + style])
        code, _ = run_agi("ingress-12345", peer, tmp_path)
        assert code == 0
        assert "HOTLINE_DEST" not in peer.final_vars


def test_unknown_route_is_a_usage_error(capsys):
    assert main(["no-such-route"]) == 2
    assert "usage" in capsys.readouterr().err
