"""Callers press DTMF (RFC 4733 from SIPp) through the real IVR on both nodes.

The FastAGI IVR runs in this test process on the lab's FastAGI ports; Asterisk
calls it from the dialplan. Each test checks where the caller landed (which
agent's phone rang) and the ticket context on that agent's INVITE.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from ivr.fastagi import FastAGIServer
from ivr.flows import FlowDeps, routes_for
from ivr.queue_stats import DialplanQueueStats
from ivr.settings import IvrSettings
from ivr.tickets import InMemoryTicketSink
from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.sipp import citizen_call, read_messages
from telephony.lab.topology import HOST, NODES
from telephony.ticket_context import decode_summary

# Prompts are interrupted by any digit, so each press lands in the menu that is playing.
FIRST_KEY_MS = 1500
NEXT_KEY_MS = 1500
# Queue position/wait announcements are tested in the flow unit tests; here they only cost time.
QUIET = replace(IvrSettings(), announce_wait=False)
# Long enough for the IVR, the queue and the agent's answer; the caller then hangs up.
TALK_S = 12.0


@contextlib.asynccontextmanager
async def ivr_running(settings: IvrSettings | None = None) -> AsyncIterator[InMemoryTicketSink]:
    sink = InMemoryTicketSink()
    servers = []
    for platform, node in NODES.items():
        deps = FlowDeps(
            platform=platform, queue=node.queue, tickets=sink,
            queue_stats=DialplanQueueStats(), settings=settings or QUIET,
        )
        server = FastAGIServer(routes_for(deps), HOST, node.fastagi_port)
        await server.start()
        servers.append(server)
    try:
        yield sink
    finally:
        for server in servers:
            await server.stop()


def presses(*digits: str) -> list[tuple[int, str]]:
    return [(FIRST_KEY_MS + i * NEXT_KEY_MS, d) for i, d in enumerate(digits)]


async def test_12345_category_choice_reaches_the_queue_with_its_category(lab: Lab) -> None:
    async with ivr_running(), logged_in_agent(lab, "12345") as agent:
        res = await citizen_call(
            number="12345", port=NODES["12345"].sip_port, caller="13700001111",
            dtmf=presses("2"), talk_s=TALK_S, timeout_s=60,
        )
        calls = await agent.wait_for_calls(1, timeout_s=30)
    assert res.ok, res.errors
    inv = calls[0].invite.headers
    assert inv["X-Ticket-Category"] == "ivr.complaint"
    assert inv["X-Ticket-Origin"] == "12345"
    assert decode_summary(inv["X-Ticket-Summary"]).startswith("IVR:")


async def test_12345_emergency_escape_goes_straight_to_110(lab: Lab) -> None:
    async with ivr_running(), logged_in_agent(lab, "110") as agent110:
        res = await citizen_call(
            number="12345", port=NODES["12345"].sip_port, dtmf=presses("0"),
            talk_s=TALK_S + 10, timeout_s=60,
        )
        calls = await agent110.wait_for_calls(1, timeout_s=30)
    assert res.ok, res.errors
    inv = calls[0].invite.headers
    assert inv["X-Ticket-Urgency"] == "critical"
    assert inv["X-Ticket-Origin"] == "12345"


async def test_12345_emergency_escape_second_key_reaches_120(lab: Lab) -> None:
    before = len(read_messages(lab.desk_dir("120")))
    async with ivr_running():
        res = await citizen_call(
            number="12345", port=NODES["12345"].sip_port, dtmf=presses("0", "2"),
            talk_s=10.0, timeout_s=60,
        )
    assert res.ok, res.errors
    invites = [m for m in read_messages(lab.desk_dir("120"))[before:] if m.method == "INVITE"
               and m.direction == "received"]
    assert invites, "the 120 desk was never called"
    assert invites[-1].header("X-Ticket-Urgency") == "critical"


async def test_110_non_police_caller_is_diverted_to_12345_with_context(lab: Lab) -> None:
    async with ivr_running(), logged_in_agent(lab, "12345") as agent:
        res = await citizen_call(
            number="110", port=NODES["110"].sip_port, caller="13600002222",
            dtmf=presses("3", "3", "1"), talk_s=TALK_S + 5, timeout_s=60,
        )
        calls = await agent.wait_for_calls(1, timeout_s=30)
    assert res.ok, res.errors
    inv = calls[0].invite.headers
    # The ticket was opened by the 110 IVR and crossed the trunk to a 12345 agent.
    assert inv["X-Ticket-Origin"] == "110"
    assert inv["X-Ticket-Category"] == "ivr.utility"
    assert inv["X-Ticket-Callback"] == "13600002222"
    assert "110分流" in decode_summary(inv["X-Ticket-Summary"])


async def test_110_caller_who_presses_nothing_reaches_police_at_once(lab: Lab) -> None:
    async with ivr_running(), logged_in_agent(lab, "110") as agent110:
        # Greeting and the whole police menu play first (about 14 s), then the police queue.
        res = await citizen_call(number="110", port=NODES["110"].sip_port, talk_s=TALK_S + 12,
                                 timeout_s=60)
        calls = await agent110.wait_for_calls(1, timeout_s=30)
    assert res.ok, res.errors
    assert calls[0].invite.headers["X-Ticket-Urgency"] == "urgent"


async def test_surge_mode_records_a_callback_and_says_goodbye(lab: Lab) -> None:
    settings = replace(QUIET, surge_forced=True)
    async with ivr_running(settings) as sink:
        # category 3 (utility), surge offer: 2 = callback, confirm own number: 1
        res = await citizen_call(
            number="12345", port=NODES["12345"].sip_port, caller="13500003333",
            dtmf=presses("3", "2", "1"), talk_s=None, timeout_s=90,
        )
    assert res.ok, res.errors
    assert res.hangup_by == "far", "the platform ends the call after the goodbye"
    assert [t.kind for t in sink.tickets] == ["callback"]
    assert sink.tickets[0].callback_number == "13500003333"
    assert sink.tickets[0].context.category == "ivr.utility"
