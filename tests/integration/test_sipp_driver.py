"""The SIPp driver end to end: real SIPp citizen against real SIPp agents/desks on loopback.

No Asterisk here: the UAS side is our own agent scenario, so these tests prove the
scenarios, the rendering and the log parsing; the lab tests reuse them via Asterisk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from telephony.lab.dtmf_pcap import TelephoneEvent, decode_telephone_event, parse_pcap
from telephony.lab.sipp import (
    SippAgent,
    SippDesk,
    citizen_call,
    citizen_load,
    desk_argv,
    pick_sip_port,
    read_messages,
    register,
    summarize_calls,
    udp_port_bound,
)

pytestmark = pytest.mark.integration


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _read_presses_and_scenario(workdir: Path) -> tuple[list[list[TelephoneEvent]], str]:
    """Decode the per-press pcaps the driver generated, then drop the kept work dir."""
    pcaps = sorted(workdir.glob("press*.pcap"))
    presses = [[decode_telephone_event(p) for p in parse_pcap(f.read_bytes())] for f in pcaps]
    scenario = (workdir / "citizen.xml").read_text()
    shutil.rmtree(workdir)
    return presses, scenario


async def test_agent_sees_ticket_headers_and_ring_delay() -> None:
    async with await SippAgent.start(port=pick_sip_port(), ring_delay_ms=600) as agent:
        result = await citizen_call(
            number="12345",
            port=agent.port,
            caller="13800000001",
            headers={"X-Ticket-Id": "T-1", "X-Ticket-Category": "water"},
            talk_s=1.0,
            timeout_s=15,
        )
        invites = agent.invites()

    assert result.ok, result.errors
    assert result.sip_status == 200
    assert result.hangup_by == "us"
    assert result.invite_to_ringing_ms is not None and result.invite_to_ringing_ms < 300
    assert result.invite_to_answer_ms is not None and 580 <= result.invite_to_answer_ms < 2000
    assert result.call_duration_s is not None and 0.9 <= result.call_duration_s < 3
    assert len(invites) == 1
    assert invites[0]["X-Ticket-Id"] == "T-1"
    assert invites[0]["X-Ticket-Category"] == "water"
    assert invites[0]["Call-ID"] == result.call_id
    assert invites[0]["From"].startswith("<sip:13800000001@")


async def test_agent_presses_feature_key_as_info_and_citizen_answers() -> None:
    agent = await SippAgent.start(port=pick_sip_port(), keys=[(300, "*1")], mode="info")
    try:
        result = await citizen_call(number="12345", port=agent.port, talk_s=2.0, timeout_s=15)
        await agent.wait_for_calls(1, ended=True)
    finally:
        agent_result = await agent.stop()

    assert result.ok, result.errors
    infos = result.received("INFO")
    assert [m.body.splitlines()[0] for m in infos] == ["Signal=*", "Signal=1"]
    assert all(m.header("Content-Type") == "application/dtmf-relay" for m in infos)
    assert all(m.call_id == result.call_id for m in infos)
    assert [m.status for m in result.sent("INFO")] == [200, 200]
    (call,) = agent_result.calls
    assert call.responses_to("INFO", "received") == [200, 200]
    assert _process_gone(agent.pid)


async def test_busy_agent_rejection_is_reported() -> None:
    async with await SippAgent.start(port=pick_sip_port(), reject_code=486) as agent:
        result = await citizen_call(number="12345", port=agent.port, timeout_s=10)

    assert not result.ok
    assert result.sip_status == 486
    assert result.invite_to_answer_ms is None
    assert [m.first_line for m in result.sent("ACK")] == [
        f"ACK sip:12345@127.0.0.1:{agent.port} SIP/2.0"
    ]


async def test_citizen_stays_until_far_end_hangs_up() -> None:
    async with await SippAgent.start(port=pick_sip_port(), hangup_after_ms=1200) as agent:
        result = await citizen_call(number="12345", port=agent.port, talk_s=None, timeout_s=15)

    assert result.ok, result.errors
    assert result.hangup_by == "far"
    assert result.call_duration_s is not None and 1.1 <= result.call_duration_s < 3
    assert [m.status for m in result.sent("BYE")] == [200]


async def test_citizen_presses_rfc4733_digits_from_generated_pcaps() -> None:
    async with await SippAgent.start(port=pick_sip_port()) as agent:
        result = await citizen_call(
            number="12345",
            port=agent.port,
            dtmf=[(200, "1"), (700, "1"), (1200, "#")],
            play_audio=True,
            talk_s=2.0,
            timeout_s=15,
            keep_workdir=True,
        )
    assert result.ok, result.errors

    presses, scenario = _read_presses_and_scenario(result.workdir)
    assert [press[0].event for press in presses] == [1, 1, 11]
    # Each press has its own timestamp and continues the sequence of the one before.
    assert len({press[0].timestamp for press in presses}) == 3
    assert presses[1][0].seq == (presses[0][-1].seq + 1) & 0xFFFF
    assert presses[2][0].seq == (presses[1][-1].seq + 1) & 0xFFFF
    assert scenario.count("play_pcap_audio=") == 4  # audio + three presses


async def test_desk_answers_many_calls_and_stops_cleanly() -> None:
    desk = await SippDesk.start(port=pick_sip_port(), number="119")
    try:
        results = [
            await citizen_call(number="119", port=desk.port, talk_s=0.3, timeout_s=10)
            for _ in range(3)
        ]
        await desk.wait_for_calls(3, ended=True)
    finally:
        desk_result = await desk.stop()

    assert all(r.ok for r in results), [r.errors for r in results]
    assert desk_result.answered == 3
    assert {c.call_id for c in desk_result.calls} == {r.call_id for r in results}
    assert _process_gone(desk.pid)


def test_detached_desk_argv_for_the_lab(tmp_path: Path) -> None:
    # The lab runs desks detached (they outlive `hotline lab up`) from the same argv.
    port = pick_sip_port()
    argv = desk_argv(tmp_path, number="120", port=port, lifetime_s=60)
    desk = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        for _ in range(50):
            if udp_port_bound(port):
                break
            time.sleep(0.1)
        result = asyncio.run(citizen_call(number="120", port=port, talk_s=0.3, timeout_s=10))
    finally:
        desk.terminate()
        desk.wait(timeout=5)

    assert result.ok, result.errors
    (call,) = summarize_calls(read_messages(tmp_path))
    assert call.answered and call.call_id == result.call_id
    (answer,) = [m for m in call.messages if m.status == 200 and m.method == "INVITE"]
    assert answer.header("Contact").startswith("<sip:desk120@127.0.0.1:")


async def test_ring_forever_agent_never_answers_and_caller_cancels() -> None:
    async with await SippAgent.start(port=pick_sip_port(), ring_forever=True) as agent:
        result = await citizen_call(number="12345", port=agent.port, timeout_s=3)

        await agent.wait_for_calls(1, ended=True, timeout_s=5)
        (agent_call,) = agent.calls()

    assert not result.ok
    assert result.invite_to_ringing_ms is not None
    assert result.invite_to_answer_ms is None
    assert result.exit_code != 0
    # The citizen gave up by itself (CANCEL) and the agent closed the INVITE with 487.
    assert len(result.sent("CANCEL")) == 1
    assert agent_call.final_status == 487


class _RawSipPeer(asyncio.DatagramProtocol):
    """A bare UDP SIP peer that sends what Asterisk sends during transfers."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.requests_seen: list[str] = []

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        text = data.decode()
        if text.startswith("SIP/2.0"):
            self.inbox.put_nowait(text)
            return
        # A request from the agent (its INFO key press): record it and answer 200.
        self.requests_seen.append(text)
        head = text.split("\r\n\r\n", 1)[0].split("\r\n")
        keep = [h for h in head[1:] if h.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
        reply = "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0", "", ""])
        assert self.transport is not None
        self.transport.sendto(reply.encode(), addr)


def _sip_request(method: str, cseq: int, *, agent_port: int, local_port: int, to_tag: str) -> str:
    sdp = (
        "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 39990 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    )
    body = sdp if method == "INVITE" else ""
    cseq_method = "ACK" if method == "ACK" else method
    headers = [
        f"{method} sip:agent@127.0.0.1:{agent_port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK-raw-{method}-{cseq}",
        f"From: <sip:raw@127.0.0.1:{local_port}>;tag=rawtag",
        f"To: <sip:agent@127.0.0.1:{agent_port}>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: raw-reinvite-call",
        f"CSeq: {cseq} {cseq_method}",
        f"Contact: <sip:raw@127.0.0.1:{local_port}>",
        "Max-Forwards: 70",
        *(["Content-Type: application/sdp"] if body else []),
        f"Content-Length: {len(body)}",
    ]
    return "\r\n".join(headers) + "\r\n\r\n" + body


async def _final_response(peer: _RawSipPeer, method: str) -> str:
    while True:
        text = await asyncio.wait_for(peer.inbox.get(), 5)
        status = int(text.split()[1])
        if status >= 200 and f" {method}\r\n" in text.split("CSeq:", 1)[1][:30]:
            return text


async def test_agent_answers_reinvite_and_update_in_the_middle_of_a_key_pause() -> None:
    loop = asyncio.get_running_loop()
    agent = await SippAgent.start(port=pick_sip_port(), keys=[(1500, "1")], mode="info")
    transport, peer = await loop.create_datagram_endpoint(_RawSipPeer, local_addr=("127.0.0.1", 0))
    local_port = transport.get_extra_info("sockname")[1]
    target = ("127.0.0.1", agent.port)
    try:

        def send(method: str, cseq: int, to_tag: str = "") -> None:
            transport.sendto(
                _sip_request(
                    method, cseq, agent_port=agent.port, local_port=local_port, to_tag=to_tag
                ).encode(),
                target,
            )

        send("INVITE", 1)
        answer = await _final_response(peer, "INVITE")
        to_tag = re.search(r"^To:.*;tag=([^;\r\n]+)", answer, re.M).group(1)  # type: ignore[union-attr]
        send("ACK", 1, to_tag)
        await asyncio.sleep(0.3)  # the agent now sits in the pause before its key press

        send("INVITE", 2, to_tag)  # what a transfer makes Asterisk send
        reinvite_ok = await _final_response(peer, "INVITE")
        send("ACK", 2, to_tag)
        send("UPDATE", 3, to_tag)
        update_ok = await _final_response(peer, "UPDATE")

        for _ in range(50):  # the key press still comes, after the interruptions
            if peer.requests_seen:
                break
            await asyncio.sleep(0.1)
        send("BYE", 4, to_tag)
        bye_ok = await _final_response(peer, "BYE")
        await agent.wait_for_calls(1, ended=True)
    finally:
        transport.close()
        agent_result = await agent.stop()

    assert reinvite_ok.startswith("SIP/2.0 200 OK")
    assert "m=audio" in reinvite_ok and "application/sdp" in reinvite_ok
    assert update_ok.startswith("SIP/2.0 200 OK")
    assert bye_ok.startswith("SIP/2.0 200 OK")
    assert len(peer.requests_seen) == 1
    assert peer.requests_seen[0].startswith("INFO sip:raw@127.0.0.1")
    assert "Signal=1" in peer.requests_seen[0]
    assert "Call-ID: raw-reinvite-call" in peer.requests_seen[0]
    (call,) = agent_result.calls
    assert call.answered and call.hangup_by == "far"
    assert agent_result.errors == ""


_CLI_MAIN = (
    "import argparse, sys\n"
    "from telephony.lab import sipp\n"
    "parser = argparse.ArgumentParser()\n"
    "sipp.register(parser.add_subparsers(required=True))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)


def test_cli_agent_and_call(capsys: pytest.CaptureFixture[str]) -> None:
    port = pick_sip_port()
    agent_cmd = ["sipp", "agent", "--port", str(port), "--ring-delay", "300", "--user", "a1"]
    agent = subprocess.Popen(
        [sys.executable, "-c", _CLI_MAIN, *agent_cmd],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().startswith(f"listening on 127.0.0.1:{port}")
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers(required=True))
        call_cmd = ["sipp", "call", "--number", "12345", "--port", str(port), "--talk", "0.5"]
        call_cmd += ["--header", "X-Ticket-Id=T-CLI", "--dtmf", "100:1", "--timeout", "10"]
        args = parser.parse_args(call_cmd)
        exit_code = args.func(args)
        summary = json.loads(capsys.readouterr().out)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent_out, _ = agent.communicate(timeout=10)

    assert exit_code == 0
    assert summary["ok"] is True and summary["sip_status"] == 200
    assert summary["invite_to_answer_ms"] >= 290
    seen = json.loads(agent_out.splitlines()[0])
    assert seen["X-Ticket-Id"] == "T-CLI"
    assert seen["Call-ID"] == summary["call_id"]
    assert "calls: 1, answered: 1" in agent_out
    assert agent.returncode == 0


async def test_a_load_of_calls_comes_from_one_sipp_paced_by_it() -> None:
    """citizen_load: n calls at a rate from one process; one record per call."""
    async with await SippAgent.start(port=pick_sip_port(), hangup_after_ms=300) as agent:
        records = await citizen_load(number="12345", port=agent.port, rate=5, calls=4,
                                     call_timeout_s=10)
        await agent.wait_for_calls(4, ended=True)

    assert len(records) == 4 and len({r.call_id for r in records}) == 4
    assert all(r.answered and r.hangup_by == "far" for r in records)
    started = sorted(r.invite.at for r in records)
    # Paced by sipp at 5/s: about 0.2 s apart, not all at once.
    assert 0.4 <= (started[-1] - started[0]).total_seconds() <= 1.5
