"""Real SIP calls through both Asterisk nodes: ingress, queue, trunk, desks, ticket headers."""

from __future__ import annotations

import asyncio
import re

import pytest

from telephony.lab.agents import logged_in_agent as logged_in
from telephony.lab.lab import Lab
from telephony.lab.sipp import citizen_call, read_messages
from telephony.lab.topology import DESKS, NODES

TICKET = re.compile(r"^T(12345|110)-\d+-\d+$")


async def test_citizen_reaches_a_12345_agent_with_a_ticket_when_the_service_is_down(
    lab: Lab,
) -> None:
    # No hotline service runs here: FastAGI fails, and the dialplan must still queue the caller.
    async with logged_in(lab, "12345", ring_delay_ms=300) as agent:
        result = await citizen_call(
            number="12345", port=NODES["12345"].sip_port, caller="13800001111", talk_s=2.0
        )
        calls = await agent.wait_for_calls(1, ended=True)
    assert result.ok, result.errors
    assert result.sip_status == 200
    assert calls[0].answered
    invite = calls[0].invite.headers
    assert TICKET.match(invite["X-Ticket-Id"]), invite
    assert invite["X-Ticket-Origin"] == "12345"
    assert invite["X-Ticket-Callback"] == "13800001111"


async def test_call_crosses_the_trunk_12345_to_110_with_its_ticket_header(lab: Lab) -> None:
    async with logged_in(lab, "110") as agent110:
        result = await citizen_call(
            number="110", port=NODES["12345"].sip_port, caller="13900002222", talk_s=2.0
        )
        calls = await agent110.wait_for_calls(1, ended=True)
    assert result.ok, result.errors
    invite = calls[0].invite.headers
    # The ticket was created on node 12345 and survived the trunk hop into node 110's queue.
    assert invite["X-Ticket-Id"].startswith("T12345-")
    assert invite["X-Ticket-Origin"] == "12345"
    assert invite["X-Ticket-Callback"] == "13900002222"


async def test_call_crosses_the_trunk_110_to_12345(lab: Lab) -> None:
    async with logged_in(lab, "12345", index=1) as agent:
        result = await citizen_call(number="12345", port=NODES["110"].sip_port, talk_s=1.5)
        calls = await agent.wait_for_calls(1, ended=True)
    assert result.ok, result.errors
    assert calls[0].invite.headers["X-Ticket-Id"].startswith("T110-")


@pytest.mark.parametrize("desk", sorted(DESKS))
async def test_desks_are_reachable_from_both_nodes(lab: Lab, desk: str) -> None:
    before = len(read_messages(lab.desk_dir(desk)))
    for platform in NODES:
        result = await citizen_call(number=desk, port=NODES[platform].sip_port, talk_s=1.0)
        assert result.ok, (platform, desk, result.errors)
    await asyncio.sleep(0.3)
    invites = [
        m for m in read_messages(lab.desk_dir(desk))[before:]
        if m.direction == "received" and m.method == "INVITE"
    ]
    origins = sorted(m.header("X-Ticket-Origin") for m in invites)
    assert origins == ["110", "12345"]


async def test_busy_agent_leaves_the_caller_queued_for_the_next_agent(lab: Lab) -> None:
    # Agent 2 rejects with 486 Busy: the queue keeps the caller and offers the call to agent 3.
    async with (
        logged_in(lab, "12345", index=2, reject_code=486) as busy,
        logged_in(lab, "12345", index=3) as ok_agent,
    ):
        # The ingress answers at once (IVR); the caller then waits in the queue.
        result = await citizen_call(number="12345", port=NODES["12345"].sip_port, talk_s=8.0,
                                    timeout_s=40)
        answered = await ok_agent.wait_for_calls(1, ended=True, timeout_s=20)
    assert result.ok, result.errors
    assert answered and answered[0].answered
    assert busy.calls() == [] or all(c.final_status == 486 for c in busy.calls())
